"""Writers for the competition's table files and the hidden truth.

Shared by the synthetic generator and the AnnData import, so that both produce
exactly the layout Kaggle ships: ``metadata.csv``, ``evaluation_ids.csv``,
``sample_submission.csv``, and, outside that layout, ``truth/solution.parquet``
(one row per scored entry, aligned with ``evaluation_ids``) and
``truth/truth.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.fsutil import atomic_path

EVAL_CHUNK_ROWS = 2_000_000  # evaluation rows per write: bounds memory at 65 million rows


def _cells_per_chunk(width: int) -> int:
    return max(1, EVAL_CHUNK_ROWS // max(1, width))


def _per_cell(values: np.ndarray, n_cells: int) -> np.ndarray:
    """View ``values`` as one row per cell (an empty task gives a 0 x 0 array)."""
    return values.reshape(0, 0) if n_cells == 0 else values.reshape(n_cells, -1)


def write_metadata(path: str | Path, metadata: pd.DataFrame) -> Path:
    """Write ``metadata.csv`` atomically, with the competition's columns in order.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV file.
    metadata : pandas.DataFrame
        Holds at least cell_id, day, donor, cell_type and technology.

    Returns
    -------
    pathlib.Path
        The CSV file.

    Raises
    ------
    ValueError
        If a column is missing.
    """
    missing = [c for c in layout.METADATA_COLUMNS if c not in metadata.columns]
    if missing:
        raise ValueError(f"metadata lacks columns {missing}")
    with atomic_path(path) as tmp:
        metadata.loc[:, list(layout.METADATA_COLUMNS)].to_csv(tmp, index=False)
    return Path(path)


def _evaluation_chunks(cite_cells, proteins, multi_cells, multi_genes, multi_positions):
    """Yield (cell_ids, gene_ids) arrays of evaluation rows, in Kaggle's order."""
    cite_cells = np.asarray(cite_cells, dtype=object)
    proteins = np.asarray(proteins, dtype=object)
    step = _cells_per_chunk(len(proteins))
    for start in range(0, len(cite_cells), step):
        cells = cite_cells[start : start + step]
        yield np.repeat(cells, len(proteins)), np.tile(proteins, len(cells))
    multi_cells = np.asarray(multi_cells, dtype=object)
    multi_genes = np.asarray(multi_genes, dtype=object)
    positions = _per_cell(np.asarray(multi_positions, dtype=np.int64), len(multi_cells))
    step = _cells_per_chunk(positions.shape[1])
    for start in range(0, len(multi_cells), step):
        cells = multi_cells[start : start + step]
        genes = multi_genes[positions[start : start + step]]
        yield np.repeat(cells, positions.shape[1]), genes.ravel()


def write_evaluation(
    out_dir: str | Path,
    cite_cells: Sequence[str],
    proteins: Sequence[str],
    multi_cells: Sequence[str],
    multi_genes: Sequence[str],
    multi_positions: np.ndarray,
) -> int:
    """Write ``evaluation_ids.csv`` and ``sample_submission.csv`` (all targets 0) atomically.

    CITEseq rows come first, then Multiome rows, in Kaggle's order.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The competition folder.
    cite_cells : sequence of str
        CITEseq test cells in test-input row order; each is scored on every protein.
    proteins : sequence of str
        The CITEseq targets in column order.
    multi_cells : sequence of str
        Scored Multiome cells in test-input row order.
    multi_genes : sequence of str
        The Multiome targets in column order.
    multi_positions : numpy.ndarray
        Per scored Multiome cell, the sorted positions in ``multi_genes`` of its scored genes.

    Returns
    -------
    int
        Number of evaluation rows.
    """
    out_dir = Path(out_dir)
    row = 0
    with (
        atomic_path(out_dir / layout.EVALUATION_IDS) as eval_tmp,
        atomic_path(out_dir / layout.SAMPLE_SUBMISSION) as sub_tmp,
    ):
        with eval_tmp.open("w") as eval_file, sub_tmp.open("w") as sub_file:
            eval_file.write(",".join(layout.EVALUATION_COLUMNS) + "\n")
            sub_file.write(",".join(layout.SUBMISSION_COLUMNS) + "\n")
            for cells, genes in _evaluation_chunks(cite_cells, proteins, multi_cells, multi_genes, multi_positions):
                row_ids = np.arange(row, row + len(cells))
                pd.DataFrame({"row_id": row_ids, "cell_id": cells, "gene_id": genes}).to_csv(
                    eval_file, header=False, index=False
                )
                pd.DataFrame({"row_id": row_ids, "target": np.zeros(len(cells))}).to_csv(
                    sub_file, header=False, index=False
                )
                row += len(cells)
    return row


SPLIT_LABELS = ("public", "private")


def _split_codes(splits: Sequence[str]) -> np.ndarray:
    splits = np.asarray(splits, dtype=object)
    unknown = set(splits) - set(SPLIT_LABELS)
    if unknown:
        raise ValueError(f"unknown leaderboard split(s) {sorted(unknown)}; expected public or private")
    return (splits == "private").astype(np.int8)


def _labels(codes: np.ndarray, dictionary: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int8()), pa.array(dictionary, type=pa.string()))


def write_solution(
    truth_dir: str | Path,
    cite_values: np.ndarray,
    cite_splits: Sequence[str],
    multi_values: np.ndarray,
    multi_splits: Sequence[str],
) -> Path:
    """Write ``truth/solution.parquet``: the true value of every evaluation row.

    Columns: row_id, target, task, split and cell (a running cell number, so
    rows of one cell are contiguous and share it).

    Parameters
    ----------
    truth_dir : str or pathlib.Path
        The hidden ``truth/`` folder.
    cite_values : numpy.ndarray
        CITEseq test cells x proteins, in evaluation order.
    cite_splits : sequence of str
        Leaderboard of each CITEseq cell: 'public' or 'private'.
    multi_values : numpy.ndarray
        Scored Multiome cells x scored genes per cell, in evaluation order.
    multi_splits : sequence of str
        Leaderboard of each scored Multiome cell.

    Returns
    -------
    pathlib.Path
        The parquet file.

    Raises
    ------
    ValueError
        If a split is neither 'public' nor 'private'.
    """
    path = Path(truth_dir) / layout.SOLUTION
    cite_values = np.asarray(cite_values, dtype=np.float32)
    multi_values = _per_cell(np.asarray(multi_values, dtype=np.float32), len(multi_splits))
    labels = pa.dictionary(pa.int8(), pa.string())
    schema = pa.schema(
        [("row_id", pa.int64()), ("target", pa.float32()), ("task", labels), ("split", labels), ("cell", pa.int32())]
    )
    row, cell = 0, 0
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for task_name, values, splits in (
                ("cite", cite_values, cite_splits),
                ("multi", multi_values, multi_splits),
            ):
                split_codes = _split_codes(splits)
                step = _cells_per_chunk(values.shape[1] if values.ndim == 2 else 1)
                for start in range(0, len(values), step):
                    block = values[start : start + step]
                    n_cells, width = block.shape
                    n = n_cells * width
                    table = pa.table(
                        {
                            "row_id": np.arange(row, row + n, dtype=np.int64),
                            "target": block.ravel(),
                            "task": _labels(np.zeros(n, np.int8), [task_name]),
                            "split": _labels(
                                np.repeat(split_codes[start : start + n_cells], width), list(SPLIT_LABELS)
                            ),
                            "cell": np.repeat(np.arange(cell, cell + n_cells, dtype=np.int32), width),
                        },
                        schema=schema,
                    )
                    writer.write_table(table)
                    row += n
                    cell += n_cells
    return path
