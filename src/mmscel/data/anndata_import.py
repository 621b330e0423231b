"""Import AnnData ``.h5ad`` / MuData ``.h5mu`` files as a competition-layout folder.

The result looks like the Kaggle competition (and the synthetic generator) for
one task: the three HDF5 matrices ``train_<task>_inputs``, ``train_<task>_targets``
and ``test_<task>_inputs``, ``metadata.csv``, ``evaluation_ids.csv``,
``sample_submission.csv``, and the hidden truth under ``truth/``
(``solution.parquet``, ``test_<task>_targets.h5``, ``truth.json``).

Feature names follow Kaggle: CITEseq inputs ``<ensembl id>_<symbol>``, Multiome
inputs peaks ``chr1:100-200`` and Multiome targets Ensembl ids. Everything is
written into a temporary folder beside ``out_dir`` that is renamed into place
at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

import mmscel
from mmscel.data import competition, layout
from mmscel.data.h5io import FrameWriter, rows_per_chunk
from mmscel.errors import InputError
from mmscel.fsutil import replace_dir, write_json

GENERATOR = "mmscel import-anndata"
DEFAULT_MODS = {"cite": ("rna", ("prot", "adt")), "multi": ("atac", ("rna",))}
DONOR_COLUMNS = ("donor", "batch")
UNKNOWN = "unknown"
_EMPTY = np.zeros((0, 0), dtype=np.float32)


# --------------------------------------------------------------------------- data model


@dataclasses.dataclass(frozen=True)
class _Block:
    """One modality's matrix: rows are the source file's cells."""

    where: str  # file path (and modality) for error messages
    matrix: Any  # CSR sparse matrix or dense ndarray
    counts: Any | None  # layers['counts'] or None
    names: np.ndarray  # Kaggle-style feature names, output column order
    columns: np.ndarray | None = None  # source column of each output column

    def rows(self, positions: np.ndarray, counts: bool = False) -> np.ndarray:
        """Dense float32 rows ``positions`` (output column order)."""
        source = self.counts if counts else self.matrix
        block = source[positions]
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        block = np.asarray(block, dtype=np.float32)
        return block if self.columns is None else block[:, self.columns]


@dataclasses.dataclass(frozen=True)
class _Cells:
    """Paired input and target rows of a set of cells, in output order."""

    ids: np.ndarray
    obs: pd.DataFrame  # indexed by ids
    inputs: _Block
    targets: _Block
    input_rows: np.ndarray
    target_rows: np.ndarray

    def take(self, mask: np.ndarray) -> _Cells:
        """The cells where ``mask`` is true, in the same order."""
        return dataclasses.replace(
            self,
            ids=self.ids[mask],
            obs=self.obs.loc[mask],
            input_rows=self.input_rows[mask],
            target_rows=self.target_rows[mask],
        )


# --------------------------------------------------------------------------- public entry point


def import_anndata(
    out_dir: str | Path,
    task: str,
    *,
    inputs: str | Path | None = None,
    targets: str | Path | None = None,
    mudata: str | Path | None = None,
    input_mod: str | None = None,
    target_mod: str | None = None,
    test_inputs: str | Path | None = None,
    test_targets: str | Path | None = None,
    split_by: str | None = None,
    test_values: Sequence[Any] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    layer: str | None = None,
    raw: bool = False,
    multi_cell_fraction: float = 1.0,
    multi_gene_fraction: float = 1.0,
    overwrite: bool = False,
) -> dict:
    """Build a competition-layout folder for ``task`` from AnnData or MuData files.

    Sources: either ``inputs`` + ``targets`` (paired ``.h5ad`` files holding the
    same cells), optionally with separate ``test_inputs`` + ``test_targets``, or
    one ``mudata`` ``.h5mu`` with modalities ``input_mod`` / ``target_mod``
    (defaults: cite 'rna' -> 'prot' or 'adt', multi 'atac' -> 'rna'). Without
    test files, the cells are split by the obs column ``split_by`` (cells whose
    value is in ``test_values`` go to test) or at random (``test_fraction``,
    seeded by ``seed``). Values come from ``.X`` or ``layers[layer]``; with
    ``raw`` the ``layers['counts']`` matrices are also written as ``*_raw.h5``.
    For Multiome, ``multi_cell_fraction`` of the test cells and
    ``multi_gene_fraction`` of the genes per cell are scored (seeded).

    Returns a summary dict (shapes, counts, split, output path). Raises
    :class:`InputError` naming the file or key on bad input; ``out_dir`` is then
    left as it was.
    """
    spec = _task(task)
    _check_options(
        spec.name,
        inputs,
        targets,
        mudata,
        test_inputs,
        test_targets,
        split_by,
        test_values,
        test_fraction,
        multi_cell_fraction,
        multi_gene_fraction,
    )
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    train, test, sources, split = _load(
        spec.name,
        inputs,
        targets,
        mudata,
        input_mod,
        target_mod,
        test_inputs,
        test_targets,
        split_by,
        test_values,
        test_fraction,
        seed,
        layer,
    )
    tmp = out_dir.with_name(f".{out_dir.name}.import-{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        summary = _write_all(tmp, spec, train, test, split_by, raw, seed, multi_cell_fraction, multi_gene_fraction)
        _write_truth_json(tmp, spec.name, sources, split, seed, summary)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out_dir": str(out_dir), "task": spec.name, "sources": sources, "split": split, **summary}


# --------------------------------------------------------------------------- option checks


def _task(name: str) -> layout.Task:
    try:
        return layout.task(name)
    except ValueError as exc:
        raise InputError("task", str(exc)) from None


def _check_options(
    task_name,
    inputs,
    targets,
    mudata,
    test_inputs,
    test_targets,
    split_by,
    test_values,
    test_fraction,
    cell_fraction,
    gene_fraction,
) -> None:
    if (mudata is None) == (inputs is None and targets is None):
        raise InputError("sources", "give either inputs + targets (.h5ad) or mudata (.h5mu), not both or neither")
    if mudata is None and (inputs is None or targets is None):
        raise InputError("sources", "inputs and targets must be given together")
    if (test_inputs is None) != (test_targets is None):
        raise InputError("test sources", "test_inputs and test_targets must be given together")
    if test_inputs is not None and mudata is not None:
        raise InputError("test sources", "separate test files go with inputs + targets, not with mudata")
    if test_inputs is not None and (split_by is not None or test_values is not None):
        raise InputError("split_by", "give either separate test files or a split column, not both")
    if split_by is not None and not test_values:
        raise InputError("test_values", f"split_by={split_by!r} needs test_values: the values that go to test")
    if test_values and split_by is None:
        raise InputError("test_values", "test_values needs split_by (the obs column they refer to)")
    for key, value in (
        ("test_fraction", test_fraction),
        ("multi_cell_fraction", cell_fraction),
        ("multi_gene_fraction", gene_fraction),
    ):
        if not 0.0 < float(value) <= 1.0:
            raise InputError(key, f"must be in (0, 1], got {value}")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(out_dir, "exists and is not empty (pass overwrite=True to replace it)")


# --------------------------------------------------------------------------- reading sources


def _load(
    task_name,
    inputs,
    targets,
    mudata,
    input_mod,
    target_mod,
    test_inputs,
    test_targets,
    split_by,
    test_values,
    test_fraction,
    seed,
    layer,
):
    """Read the sources and split them; return (train, test, sources, split)."""
    if mudata is not None:
        cells, sources = _load_mudata(task_name, mudata, input_mod, target_mod, layer)
    else:
        cells = _load_pair(task_name, inputs, targets, layer)
        sources = {"inputs": str(inputs), "targets": str(targets)}
    if test_inputs is not None:
        test = _load_pair(task_name, test_inputs, test_targets, layer)
        test = _align_features(cells, test)
        _check_disjoint(cells, test, test_inputs)
        sources.update(test_inputs=str(test_inputs), test_targets=str(test_targets))
        split = {"method": "files", "test_inputs": str(test_inputs), "test_targets": str(test_targets)}
        return cells, test, sources, split
    if split_by is not None:
        is_test, split = _column_split(cells, split_by, test_values)
    else:
        is_test, split = (
            _random_split(len(cells.ids), test_fraction, seed),
            {"method": "fraction", "test_fraction": float(test_fraction), "seed": int(seed)},
        )
    _check_split_sizes(cells, is_test, split)
    return cells.take(~is_test), cells.take(is_test), sources, split


def _read_h5ad(path) -> Any:
    import anndata

    return _read_file(path, anndata.read_h5ad, "AnnData .h5ad")


def _read_h5mu(path) -> Any:
    import mudata

    return _read_file(path, mudata.read_h5mu, "MuData .h5mu")


def _read_file(path, reader, kind: str) -> Any:
    """Read with ``reader``; a missing or corrupt file becomes a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reader(path)
    except Exception as exc:  # h5py, anndata and mudata report corruption in many ways
        raise InputError(path, f"cannot read as {kind} (corrupt or another format?): {_short(exc)}") from None


def _load_pair(task_name: str, inputs, targets, layer) -> _Cells:
    """Read paired ``inputs`` / ``targets`` .h5ad files as aligned cells."""
    adata_in, adata_tg = _read_h5ad(inputs), _read_h5ad(targets)
    block_in = _block(adata_in, str(inputs), task_name, "inputs", layer)
    block_tg = _block(adata_tg, str(targets), task_name, "targets", layer)
    return _pair(adata_in, adata_tg, block_in, block_tg, extra_obs=())


def _load_mudata(task_name: str, path, input_mod, target_mod, layer) -> tuple[_Cells, dict]:
    """Read the two modalities of a .h5mu file as aligned cells."""
    mdata = _read_h5mu(path)
    available = list(mdata.mod)
    default_in, default_tg = DEFAULT_MODS[task_name]
    input_mod = _pick_mod(path, available, [input_mod] if input_mod else [default_in])
    target_mod = _pick_mod(path, available, [target_mod] if target_mod else list(default_tg))
    adata_in, adata_tg = mdata.mod[input_mod], mdata.mod[target_mod]
    block_in = _block(adata_in, f"{path}:{input_mod}", task_name, "inputs", layer)
    block_tg = _block(adata_tg, f"{path}:{target_mod}", task_name, "targets", layer)
    cells = _pair(adata_in, adata_tg, block_in, block_tg, extra_obs=(mdata.obs,))
    return cells, {"mudata": str(path), "input_mod": input_mod, "target_mod": target_mod}


def _pick_mod(path, available: list[str], wanted: list[str]) -> str:
    for name in wanted:
        if name in available:
            return name
    raise InputError(
        path, f"no modality {' or '.join(map(repr, wanted))} (available: {', '.join(available) or 'none'})"
    )


def _block(adata, where: str, task_name: str, role: str, layer: str | None) -> _Block:
    """The value matrix and Kaggle-style feature names of one AnnData."""
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise InputError(where, "has no .X matrix (give layer=...)")
    elif layer in adata.layers:
        matrix = adata.layers[layer]
    else:
        raise InputError(where, f"no layer {layer!r} (available: {', '.join(adata.layers) or 'none'})")
    counts = adata.layers["counts"] if "counts" in adata.layers else None
    names = _feature_names(task_name, role, adata.var)
    _check_unique(names, where, "feature names")
    _check_unique(np.asarray(adata.obs_names, dtype=object), where, "cell ids (obs_names)")
    return _Block(where, _row_major(matrix), _row_major(counts), names)


def _row_major(matrix):
    """CSR for sparse matrices (cheap row slicing), the array itself otherwise."""
    if matrix is None:
        return None
    if sparse.issparse(matrix):
        return sparse.csr_matrix(matrix)
    return np.asarray(matrix)


def _feature_names(task_name: str, role: str, var: pd.DataFrame) -> np.ndarray:
    """Kaggle-style column names for one modality."""
    symbols = np.asarray(var.index, dtype=str).astype(object)
    if task_name == "cite" and role == "inputs" and "gene_ids" in var:
        return np.asarray(var["gene_ids"].astype(str), dtype=object) + "_" + symbols
    if task_name == "multi" and role == "inputs":
        return np.asarray([peak_name(name) for name in symbols], dtype=object)
    if task_name == "multi" and "gene_ids" in var:
        return np.asarray(var["gene_ids"].astype(str), dtype=object)
    return symbols


def peak_name(name: str) -> str:
    """Kaggle's peak spelling: ``chr1-100-200`` -> ``chr1:100-200`` (unchanged if it has ':')."""
    return name if ":" in name else name.replace("-", ":", 1)


def _check_unique(names: np.ndarray, where: str, what: str) -> None:
    values, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        raise InputError(where, f"duplicate {what}, e.g. {values[counts > 1][:3].tolist()}")


def _pair(adata_in, adata_tg, block_in: _Block, block_tg: _Block, extra_obs) -> _Cells:
    """Align the target rows to the input cells; refuse different cell sets."""
    ids = np.asarray(adata_in.obs_names, dtype=str).astype(object)
    target_ids = pd.Index(np.asarray(adata_tg.obs_names, dtype=str))
    target_rows = target_ids.get_indexer(ids)
    if len(target_ids) != len(ids) or (target_rows < 0).any():
        only_in = len(pd.Index(ids).difference(target_ids))
        only_tg = len(target_ids.difference(pd.Index(ids)))
        raise InputError(
            block_tg.where,
            f"holds different cells than {block_in.where} ({only_in} only in inputs, {only_tg} only in targets)",
        )
    frames = [adata_in.obs, adata_tg.obs, *extra_obs]
    return _Cells(ids, _merge_obs(frames, ids), block_in, block_tg, np.arange(len(ids)), target_rows)


def _merge_obs(frames, ids: np.ndarray) -> pd.DataFrame:
    """One obs table for ``ids``: columns of the first frame that has each."""
    out = pd.DataFrame(index=pd.Index(ids, name="cell_id"))
    for frame in frames:
        index = pd.Index(np.asarray(frame.index, dtype=str))
        if not index.is_unique:
            continue
        rows = index.get_indexer(ids)
        for column in frame.columns:
            if column not in out.columns:
                values = frame[column].to_numpy(dtype=object)
                out[column] = np.where(rows >= 0, values[np.maximum(rows, 0)], None) if len(values) else None
    return out


def _align_features(train: _Cells, test: _Cells) -> _Cells:
    """Reorder the test columns to the training columns; refuse other feature sets."""
    blocks = {}
    for role in ("inputs", "targets"):
        ref, block = getattr(train, role), getattr(test, role)
        if np.array_equal(ref.names, block.names):
            continue
        position = pd.Index(block.names).get_indexer(ref.names)
        if len(block.names) != len(ref.names) or (position < 0).any():
            missing = pd.Index(ref.names).difference(pd.Index(block.names))[:3].tolist()
            extra = pd.Index(block.names).difference(pd.Index(ref.names))[:3].tolist()
            raise InputError(
                block.where,
                f"test {role} features differ from training ({len(block.names)} vs {len(ref.names)}; "
                f"missing e.g. {missing}, extra e.g. {extra})",
            )
        blocks[role] = dataclasses.replace(block, names=ref.names, columns=position)
    return dataclasses.replace(test, **blocks)


def _check_disjoint(train: _Cells, test: _Cells, where) -> None:
    shared = pd.Index(train.ids).intersection(pd.Index(test.ids))
    if len(shared):
        raise InputError(where, f"{len(shared)} test cell ids also appear in training, e.g. {shared[:3].tolist()}")


# --------------------------------------------------------------------------- splitting


def _column_split(cells: _Cells, column: str, test_values) -> tuple[np.ndarray, dict]:
    """Cells whose ``column`` value is one of ``test_values`` go to test."""
    if column not in cells.obs.columns:
        available = ", ".join(map(str, cells.obs.columns)) or "none"
        raise InputError(cells.inputs.where, f"no obs column {column!r} to split by (available: {available})")
    values = cells.obs[column].astype(str).to_numpy()
    wanted = [str(v) for v in test_values]
    split = {"method": "column", "column": column, "test_values": wanted}
    return np.isin(values, wanted), split


def _random_split(n_cells: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded random test mask holding ``round(fraction * n_cells)`` cells."""
    n_test = int(round(float(fraction) * n_cells))
    is_test = np.zeros(n_cells, dtype=bool)
    is_test[np.random.default_rng(seed).permutation(n_cells)[:n_test]] = True
    return is_test


def _check_split_sizes(cells: _Cells, is_test: np.ndarray, split: dict) -> None:
    n_test = int(is_test.sum())
    if n_test == 0 or n_test == len(is_test):
        side = "no test cells" if n_test == 0 else "no training cells"
        detail = ", ".join(f"{k}={v}" for k, v in split.items() if k != "method")
        where = f"{cells.inputs.where} obs[{split['column']!r}]" if split["method"] == "column" else "test_fraction"
        raise InputError(where, f"the split ({detail}) leaves {side} of {len(is_test)}")


# --------------------------------------------------------------------------- writing


def _write_all(
    out: Path,
    spec: layout.Task,
    train: _Cells,
    test: _Cells,
    split_by,
    raw: bool,
    seed: int,
    cell_fraction: float,
    gene_fraction: float,
) -> dict:
    """Write matrices, metadata, evaluation and truth files; return the summary."""
    truth_dir = out / layout.TRUTH_DIR
    truth_dir.mkdir()
    test_targets = spec.test_inputs.replace("inputs", "targets")
    written = [
        (out, spec.train_inputs, train, "inputs"),
        (out, spec.train_targets, train, "targets"),
        (out, spec.test_inputs, test, "inputs"),
        (truth_dir, test_targets, test, "targets"),
    ]
    raw_files = []
    for folder, stem, cells, role in written:
        _write_matrix(layout.h5_path(folder, stem), stem, cells, role)
        if raw and folder == out and getattr(cells, role).counts is not None:
            raw_stem = stem + layout.RAW_SUFFIX
            _write_matrix(layout.h5_path(folder, raw_stem), raw_stem, cells, role, counts=True)
            raw_files.append(f"{raw_stem}.h5")
    _write_metadata(out, spec, train, test, split_by)
    rows = _write_scoring(out, truth_dir, spec.name, test, seed, cell_fraction, gene_fraction)
    p, q = len(train.inputs.names), len(train.targets.names)
    return {
        "shapes": {
            spec.name: {
                "train_inputs": [len(train.ids), p],
                "train_targets": [len(train.ids), q],
                "test_inputs": [len(test.ids), p],
            }
        },
        "train_cells": len(train.ids),
        "test_cells": len(test.ids),
        "evaluation_rows": rows,
        "raw_files": raw_files,
    }


def _write_matrix(path: Path, key: str, cells: _Cells, role: str, counts: bool = False) -> Path:
    """Write the ``role`` ('inputs'/'targets') rows of ``cells`` as a Kaggle HDF5 frame, chunk by chunk."""
    block = getattr(cells, role)
    source_rows = cells.input_rows if role == "inputs" else cells.target_rows
    step = rows_per_chunk(len(block.names))
    with FrameWriter(path, key, cells.ids, block.names) as writer:
        for start in range(0, len(source_rows), step):
            chunk = block.rows(source_rows[start : start + step], counts=counts)
            if not np.isfinite(chunk).all():
                raise InputError(block.where, f"non-finite values in the rows of cells {start}-{start + len(chunk)}")
            writer.write(chunk)
    return path


def _write_metadata(out: Path, spec: layout.Task, train: _Cells, test: _Cells, split_by) -> None:
    """``metadata.csv`` for this task's cells; test cell types are 'hidden' as on Kaggle."""
    frames = [_metadata(spec, train, split_by, hidden=False), _metadata(spec, test, split_by, hidden=True)]
    competition.write_metadata(out / layout.METADATA, pd.concat(frames, ignore_index=True))


def _metadata(spec: layout.Task, cells: _Cells, split_by, hidden: bool) -> pd.DataFrame:
    obs = cells.obs
    donor_column = split_by or next((c for c in DONOR_COLUMNS if c in obs.columns), None)
    donor = obs[donor_column].astype(str).to_numpy() if donor_column else np.full(len(obs), UNKNOWN, dtype=object)
    cell_type = obs["cell_type"].astype(str).to_numpy() if "cell_type" in obs.columns else UNKNOWN
    return pd.DataFrame(
        {
            "cell_id": cells.ids,
            "day": _days(cells),
            "donor": donor,
            "cell_type": layout.HIDDEN_CELL_TYPE if hidden else cell_type,
            "technology": spec.technology,
        }
    )


def _days(cells: _Cells) -> np.ndarray:
    if "day" not in cells.obs.columns:
        return np.zeros(len(cells.ids), dtype=np.int64)
    day = pd.to_numeric(cells.obs["day"], errors="coerce")
    if day.isna().any() or (day != day.round()).any():
        raise InputError(cells.inputs.where, "obs['day'] holds values that are not whole numbers")
    return day.to_numpy().astype(np.int64)


def _write_scoring(
    out: Path, truth_dir: Path, task_name: str, test: _Cells, seed: int, cell_fraction: float, gene_fraction: float
) -> int:
    """Write evaluation_ids, sample_submission and truth/solution.parquet; return the row count."""
    genes = test.targets.names
    if task_name == "cite":
        scored = np.arange(len(test.ids))
        positions = np.tile(np.arange(len(genes)), (len(scored), 1))
    else:
        scored, positions = _scored_entries(len(test.ids), len(genes), seed, cell_fraction, gene_fraction)
    values = _scored_values(test, scored, positions)
    splits = np.full(len(scored), "private", dtype=object)
    if task_name == "cite":
        rows = _write_cite_evaluation(out, test.ids, genes)
        _write_cite_solution(truth_dir, values, splits)
    else:
        rows = competition.write_evaluation(out, [], [], test.ids[scored], genes, positions)
        competition.write_solution(truth_dir, _EMPTY, [], values, splits)
    return rows


def _scored_entries(n_cells: int, n_genes: int, seed: int, cell_fraction: float, gene_fraction: float):
    """Seeded Multiome scoring: sorted scored cells and, per cell, sorted gene positions."""
    rng = np.random.default_rng([seed, 1])
    n_scored = max(1, int(round(cell_fraction * n_cells)))
    k = max(1, int(round(gene_fraction * n_genes)))
    cells = np.sort(rng.choice(n_cells, n_scored, replace=False)) if n_scored < n_cells else np.arange(n_cells)
    if k == n_genes:
        return cells, np.tile(np.arange(n_genes), (len(cells), 1))
    positions = np.empty((len(cells), k), dtype=np.int64)
    step = max(1, 2**22 // n_genes)  # bounded memory for the random keys
    for start in range(0, len(cells), step):
        keys = rng.random((min(step, len(cells) - start), n_genes))
        positions[start : start + len(keys)] = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    return cells, positions


def _scored_values(test: _Cells, scored: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """True target values of the scored entries (scored cells x positions), read in row chunks."""
    out = np.empty(positions.shape, dtype=np.float32)
    step = rows_per_chunk(len(test.targets.names))
    for start in range(0, len(scored), step):
        rows = test.target_rows[scored[start : start + step]]
        dense = test.targets.rows(rows)
        out[start : start + len(rows)] = np.take_along_axis(dense, positions[start : start + len(rows)], axis=1)
    return out


def _write_cite_evaluation(out: Path, cells: np.ndarray, proteins: np.ndarray) -> int:
    """CITEseq-only evaluation files: every test cell times every protein."""
    return competition.write_evaluation(out, cells, proteins, [], [], np.zeros((0, 0), dtype=np.int64))


def _write_cite_solution(truth_dir: Path, values: np.ndarray, splits: np.ndarray) -> Path:
    """CITEseq-only ``solution.parquet``."""
    return competition.write_solution(truth_dir, values, splits, _EMPTY, [])


def _write_truth_json(out: Path, task_name: str, sources: dict, split: dict, seed: int, summary: dict) -> None:
    write_json(
        out / layout.TRUTH_DIR / layout.TRUTH_JSON,
        {
            "generator": GENERATOR,
            "version": mmscel.__version__,
            "task": task_name,
            "sources": sources,
            "split": split,
            "seed": int(seed),
            "shapes": summary["shapes"],
            "evaluation_rows": summary["evaluation_rows"],
            "oracle": None,
            "n_test_cells": {"public": 0, "private": summary["test_cells"]},
        },
    )


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else text
