"""Import AnnData ``.h5ad`` / MuData ``.h5mu`` files (or such objects in memory) as a competition-layout folder.

The result looks like the Kaggle competition (and the synthetic generator) for
one task. Everything is written into a temporary folder beside ``out_dir``
that is renamed into place at the end, so a failure leaves nothing
half-written. Sources are read by :mod:`mmscel.data.anndata_read`, split by
:mod:`mmscel.data.anndata_split` and written by :mod:`mmscel.data.anndata_write`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmscel.data import layout
from mmscel.data.anndata_counts import counts_mode, methods, process_counts
from mmscel.data.anndata_read import Cells, obsm_where, peak_name, read_cells, read_test_cells
from mmscel.data.anndata_sources import Sources, describe
from mmscel.data.anndata_split import SplitRule, split_cells
from mmscel.data.anndata_write import write_dataset, write_truth_json
from mmscel.data.error_text import shown
from mmscel.errors import InputError
from mmscel.fsutil import replace_dir, sweep_leftovers

__all__ = ["import_anndata", "peak_name"]


def import_anndata(
    out_dir: str | Path,
    task: str,
    *,
    inputs: str | Path | Any = None,
    targets: str | Path | Any = None,
    mudata: str | Path | Any = None,
    input_mod: str | None = None,
    target_mod: str | None = None,
    test_inputs: str | Path | Any = None,
    test_targets: str | Path | Any = None,
    targets_obsm: str | None = None,
    split_by: str | None = None,
    test_values: Sequence[Any] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    layer: str | None = None,
    counts: str = "auto",
    normalize: bool = False,
    proteins: str = "clr",
    atac: str = "tfidf",
    raw: bool = False,
    multi_cell_fraction: float = 1.0,
    multi_gene_fraction: float = 1.0,
    overwrite: bool = False,
) -> dict:
    """Build a competition-layout folder for ``task`` from AnnData or MuData files or objects.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The folder to write; it must be empty unless ``overwrite``.
    task : {'cite', 'multi'}
        The task the files stand for.
    inputs, targets : str or pathlib.Path or anndata.AnnData, optional
        Paired ``.h5ad`` files (or AnnData objects in memory, read and never modified) holding the same cells.
    mudata : str or pathlib.Path or mudata.MuData, optional
        One ``.h5mu`` file (or MuData object) instead of ``inputs`` + ``targets``.
    input_mod, target_mod : str, optional
        Modalities of ``mudata`` (defaults: cite 'rna' -> 'prot' or 'adt', multi 'atac' -> 'rna').
    test_inputs, test_targets : str or pathlib.Path or anndata.AnnData, optional
        Separate paired ``.h5ad`` test files or objects (with ``inputs`` + ``targets``).
    targets_obsm : str, optional
        Read the targets from ``obsm[targets_obsm]`` of ``inputs`` (and of ``test_inputs``), in place of
        ``targets`` and ``test_targets``: a DataFrame (its columns name the targets) or an array whose
        names are in ``uns['protein_names']`` (scvi-tools' layout of CITE-seq proteins).
    split_by : str, optional
        Without test files: the obs column whose ``test_values`` go to test.
    test_values : sequence, optional
        The values of ``split_by`` that go to test.
    test_fraction : float
        Without test files or ``split_by``: the share of cells drawn for test.
    seed : int
        Seed of the random split and of the scored Multiome entries.
    layer : str, optional
        Read values from ``layers[layer]`` instead of ``.X``.
    counts : {'auto', 'normalise', 'keep'}
        Raw counts (whole non-negative values, some above 1): ``auto`` applies the
        competition's processing to each modality that holds them (CITEseq RNA and
        Multiome RNA log1p CP10k, ATAC as ``atac``, proteins as ``proteins``),
        ``normalise`` requires counts in both modalities and processes them,
        ``keep`` imports the values as they are (and warns when they are counts).
        The summary's ``values`` (also in ``truth/truth.json``) says what was done.
    normalize : bool
        Shorthand for ``counts='normalise'`` (the ``--normalize`` flag); with ``counts='keep'`` an error.
    proteins : {'clr', 'dsb'}
        CITEseq protein counts: CLR per cell, or dsb without empty droplets
        (:func:`mmscel.data.dsb.dsb`, fitted on train and test cells at once).
    atac : {'tfidf', 'binary'}
        Multiome ATAC counts: the competition's TF-IDF, or peaks > 0 -> 1 (the 2021 NeurIPS benchmark's values).
    raw : bool
        Also write ``layers['counts']`` as ``*_raw.h5``.
    multi_cell_fraction, multi_gene_fraction : float
        Multiome: share of test cells scored, and of genes scored per cell (seeded).
    overwrite : bool
        Replace a non-empty ``out_dir``.

    Returns
    -------
    dict
        Summary: output path, task, sources, split, shapes, cell counts, evaluation rows, and
        ``values``, one line on the processing of raw counts.

    Raises
    ------
    InputError
        Naming the file or option on bad input; ``out_dir`` is then left as it was.
    """
    spec = _task(task)
    sources = Sources(inputs, targets, mudata, input_mod, target_mod, test_inputs, test_targets, targets_obsm)
    rule = SplitRule(split_by, test_values, test_fraction, seed)
    _check_options(sources, rule, multi_cell_fraction, multi_gene_fraction)
    counts = counts_mode(counts, normalize)
    proteins, atac = methods(proteins, atac)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    train, test, described, split = _load(spec.name, sources, rule, layer)
    train, test, values = process_counts(spec.name, train, test, counts, proteins=proteins, atac=atac)
    sweep_leftovers(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.import-{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        summary = write_dataset(
            tmp,
            spec,
            train,
            test,
            split_by=split_by,
            raw=raw,
            seed=seed,
            cell_fraction=multi_cell_fraction,
            gene_fraction=multi_gene_fraction,
        )
        summary["values"] = values
        write_truth_json(tmp, spec.name, described, split, seed, summary)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out_dir": str(out_dir), "task": spec.name, "sources": described, "split": split, **summary}


def _task(name: str) -> layout.Task:
    try:
        return layout.task(name)
    except ValueError as exc:
        raise InputError("task", str(exc)) from None


def _check_options(sources: Sources, rule: SplitRule, cell_fraction: float, gene_fraction: float) -> None:
    _check_targets_obsm(sources)
    in_obsm = sources.targets_obsm is not None  # the targets come with the inputs, test ones with the test inputs
    targets = sources.targets is not None or in_obsm
    test_targets = sources.test_targets is not None or (in_obsm and sources.test_inputs is not None)
    no_pair = sources.inputs is None and not targets
    if (sources.mudata is None) == no_pair:
        raise InputError("sources", "give either inputs + targets (.h5ad) or mudata (.h5mu), not both or neither")
    if sources.mudata is None and (sources.inputs is None or not targets):
        raise InputError("sources", "inputs and targets must be given together")
    if (sources.test_inputs is not None) != test_targets:
        raise InputError("test sources", "test_inputs and test_targets must be given together")
    if sources.test_inputs is not None and sources.mudata is not None:
        raise InputError("test sources", "separate test files go with inputs + targets, not with mudata")
    if sources.test_inputs is not None and (rule.split_by is not None or rule.test_values is not None):
        raise InputError("split_by", "give either separate test files or a split column, not both")
    if rule.split_by is not None and not rule.test_values:
        problem = f"split_by={shown(rule.split_by)} needs test_values: the values that go to test"
        raise InputError("test_values", problem)
    if rule.test_values and rule.split_by is None:
        raise InputError("test_values", "test_values needs split_by (the obs column they refer to)")
    for key, value in (
        ("test_fraction", rule.test_fraction),
        ("multi_cell_fraction", cell_fraction),
        ("multi_gene_fraction", gene_fraction),
    ):
        if not 0.0 < float(value) <= 1.0:
            raise InputError(key, f"must be in (0, 1], got {value}")


def _check_targets_obsm(sources: Sources) -> None:
    if sources.targets_obsm is None:
        return
    given = [key for key in ("targets", "test_targets", "mudata") if getattr(sources, key) is not None]
    if given:
        problem = f"reads the targets from the inputs' obsm: give inputs (and test_inputs), not {', '.join(given)}"
        raise InputError("targets_obsm", problem)
    if sources.inputs is None:
        raise InputError("targets_obsm", "needs inputs (an .h5ad whose obsm holds the targets)")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(out_dir, "exists and is not empty (pass overwrite=True to replace it)")


def _load(task_name: str, sources: Sources, rule: SplitRule, layer: str | None) -> tuple[Cells, Cells, dict, dict]:
    """Read the sources and split them; return (train, test, sources described, split described)."""
    cells, described = read_cells(task_name, sources, layer)
    if sources.test_inputs is None:
        is_test, split = split_cells(cells, rule)
        return cells.take(~is_test), cells.take(is_test), described, split
    test = read_test_cells(task_name, sources, layer, cells)
    named = {key: describe(getattr(sources, key), key) for key in ("test_inputs", "test_targets")}
    if sources.targets_obsm is not None:
        named["test_targets"] = obsm_where(named["test_inputs"], sources.targets_obsm)
    described.update(named)
    split = {"method": "files", **named}
    return cells, test, described, split
