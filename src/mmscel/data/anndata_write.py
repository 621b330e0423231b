"""Write imported cells as one task of the competition layout, with the hidden truth.

The matrices ``train_<task>_inputs``, ``train_<task>_targets`` and
``test_<task>_inputs``, ``metadata.csv``, ``evaluation_ids.csv``,
``sample_submission.csv``, and under ``truth/`` ``solution.parquet``,
``test_<task>_targets.h5`` and ``truth.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mmscel
from mmscel.data import competition, layout
from mmscel.data.anndata_read import Cells
from mmscel.data.error_text import shown
from mmscel.data.h5_format import rows_per_chunk
from mmscel.data.h5_writer import FrameWriter
from mmscel.data.value_checks import describe, first_bad_dense
from mmscel.errors import InputError
from mmscel.fsutil import write_json

GENERATOR = "mmscel import-anndata"
DONOR_COLUMNS = ("donor", "batch")
UNKNOWN = "unknown"
_EMPTY = np.zeros((0, 0), dtype=np.float32)
_NO_POSITIONS = np.zeros((0, 0), dtype=np.int64)


def write_dataset(
    out: Path,
    spec: layout.Task,
    train: Cells,
    test: Cells,
    *,
    split_by: str | None,
    raw: bool,
    seed: int,
    cell_fraction: float,
    gene_fraction: float,
) -> dict:
    """Write the matrices, metadata, evaluation and solution files of one task.

    Parameters
    ----------
    out : pathlib.Path
        An empty folder.
    spec : layout.Task
        The task.
    train, test : Cells
        The training and test cells.
    split_by : str or None
        The obs column of the split, which then names each cell's donor.
    raw : bool
        Also write ``*_raw.h5`` from ``layers['counts']`` where present.
    seed : int
        Seed of the scored Multiome entries.
    cell_fraction, gene_fraction : float
        Multiome: share of test cells scored, and of genes scored per cell.

    Returns
    -------
    dict
        Shapes, cell counts, evaluation rows and the raw files written.

    Raises
    ------
    InputError
        If a matrix holds a non-finite value (or a negative one in the inputs
        or the counts), obs['day'] is not whole numbers or obs' donor column
        has a blank; nothing is left under the final name.
    """
    truth_dir = out / layout.TRUTH_DIR
    truth_dir.mkdir()
    raw_files = _write_matrices(out, truth_dir, spec, train, test, raw)
    frames = [_metadata(spec, train, split_by, hidden=False), _metadata(spec, test, split_by, hidden=True)]
    competition.write_metadata(out / layout.METADATA, pd.concat(frames, ignore_index=True))
    rows = _write_scoring(out, truth_dir, spec.name, test, seed, cell_fraction, gene_fraction)
    p, q = len(train.inputs.names), len(train.targets.names)
    shapes = {
        "train_inputs": [len(train.ids), p],
        "train_targets": [len(train.ids), q],
        "test_inputs": [len(test.ids), p],
    }
    return {
        "shapes": {spec.name: shapes},
        "train_cells": len(train.ids),
        "test_cells": len(test.ids),
        "evaluation_rows": rows,
        "raw_files": raw_files,
    }


def write_truth_json(out: Path, task_name: str, sources: dict, split: dict, seed: int, summary: dict) -> None:
    """Write ``truth/truth.json``, which describes where the import came from.

    Parameters
    ----------
    out : pathlib.Path
        The dataset folder.
    task_name : str
        The task.
    sources : dict
        The files read.
    split : dict
        How the cells were split.
    seed : int
        The import's seed.
    summary : dict
        What :func:`write_dataset` returned, with ``values`` (the processing of raw counts).
    """
    write_json(
        out / layout.TRUTH_DIR / layout.TRUTH_JSON,
        {
            "generator": GENERATOR,
            "version": mmscel.__version__,
            "task": task_name,
            "sources": sources,
            "split": split,
            "seed": int(seed),
            "values": summary.get("values"),
            "shapes": summary["shapes"],
            "evaluation_rows": summary["evaluation_rows"],
            "oracle": None,
            "n_test_cells": {"public": 0, "private": summary["test_cells"]},
        },
    )


def _write_matrices(out: Path, truth_dir: Path, spec: layout.Task, train: Cells, test: Cells, raw: bool) -> list[str]:
    """Write the four matrices (and the raw counts beside the public ones); return the raw file names."""
    written = [
        (out, spec.train_inputs, train, "inputs"),
        (out, spec.train_targets, train, "targets"),
        (out, spec.test_inputs, test, "inputs"),
        (truth_dir, spec.test_inputs.replace("inputs", "targets"), test, "targets"),
    ]
    raw_files = []
    for folder, stem, cells, role in written:
        _write_matrix(layout.h5_path(folder, stem), stem, cells, role)
        if raw and folder == out and getattr(cells, role).counts is not None:
            raw_stem = stem + layout.RAW_SUFFIX
            _write_matrix(layout.h5_path(folder, raw_stem), raw_stem, cells, role, counts=True)
            raw_files.append(f"{raw_stem}.h5")
    return raw_files


def _write_matrix(path: Path, key: str, cells: Cells, role: str, counts: bool = False) -> Path:
    """Write the ``role`` ('inputs'/'targets') rows of ``cells`` as a Kaggle HDF5 frame, chunk by chunk.

    The inputs and the raw counts hold counts or their normalisation, so a
    negative value is refused there as in ``prepare``; a non-finite value anywhere.
    """
    block = getattr(cells, role)
    source_rows = cells.rows_of(role)
    step = rows_per_chunk(len(block.names))
    where = f"{block.where} layers['counts']" if counts else block.where
    with FrameWriter(path, key, cells.ids, block.names) as writer:
        for start in range(0, len(source_rows), step):
            chunk = block.rows(source_rows[start : start + step], counts=counts)
            bad = first_bad_dense(chunk, counts or role == "inputs")
            if bad is not None:
                raise InputError(where, describe(bad, cells.ids[start + bad.row], block.names[bad.column], start))
            writer.write(chunk)
    return path


def _metadata(spec: layout.Task, cells: Cells, split_by, hidden: bool) -> pd.DataFrame:
    """Metadata rows of ``cells``; test cell types are 'hidden' as on Kaggle."""
    obs = cells.obs
    donor_column = split_by or next((c for c in DONOR_COLUMNS if c in obs.columns), None)
    if donor_column:
        _refuse_blank(cells, donor_column, "a donor")
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


def _days(cells: Cells) -> np.ndarray:
    if "day" not in cells.obs.columns:
        return np.zeros(len(cells.ids), dtype=np.int64)
    day = pd.to_numeric(cells.obs["day"], errors="coerce")
    bad = (day.isna() | (day != day.round())).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = cells.obs["day"].iloc[row]
        text = "blank" if pd.isna(value) or not str(value).strip() else shown(str(value))
        problem = f"obs['day'] of cell {shown(cells.ids[row])} is {text}; every cell needs a whole-number day"
        raise InputError(cells.inputs.where, problem)
    return day.to_numpy().astype(np.int64)


def _refuse_blank(cells: Cells, column: str, need: str) -> None:
    values = cells.obs[column]
    blank = (values.isna() | values.astype(str).str.strip().eq("")).to_numpy()
    if blank.any():
        cell = cells.ids[int(np.argmax(blank))]
        problem = f"obs[{shown(column)}] of cell {shown(cell)} is blank; every cell needs {need}"
        raise InputError(cells.inputs.where, problem)


def _write_scoring(
    out: Path, truth_dir: Path, task_name: str, test: Cells, seed: int, cell_fraction: float, gene_fraction: float
) -> int:
    """Write evaluation_ids, sample_submission and truth/solution.parquet; return the row count.

    CITEseq scores every test cell and protein, Multiome a seeded share of
    cells and of genes per cell.
    """
    genes = test.targets.names
    if task_name == "cite":
        scored = np.arange(len(test.ids))
        positions = np.tile(np.arange(len(genes)), (len(scored), 1))
    else:
        scored, positions = _scored_entries(len(test.ids), len(genes), seed, cell_fraction, gene_fraction)
    values = _scored_values(test, scored, positions)
    splits = np.full(len(scored), "private", dtype=object)
    if task_name == "cite":
        rows = competition.write_evaluation(out, test.ids, genes, [], [], _NO_POSITIONS)
        competition.write_solution(truth_dir, values, splits, _EMPTY, [])
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


def _scored_values(test: Cells, scored: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """True target values of the scored entries (scored cells x positions), read in row chunks."""
    out = np.empty(positions.shape, dtype=np.float32)
    step = rows_per_chunk(len(test.targets.names))
    for start in range(0, len(scored), step):
        rows = test.target_rows[scored[start : start + step]]
        dense = test.targets.rows(rows)
        out[start : start + len(rows)] = np.take_along_axis(dense, positions[start : start + len(rows)], axis=1)
    return out
