"""Kaggle submissions: build, validate and write ``row_id,target`` files.

Rows follow ``evaluation_ids``: every CITEseq test cell times its 140
proteins, then the scored Multiome cells times their scored genes. A
submission is validated before it is written (row count and order, finite
values, no constant cell) and read back with the same checks before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.data.cache import idxcol_path
from mmscel.data.error_text import shown
from mmscel.data.load import cache_dir_for, cached_idxcol, check_cache, load_matrix, read_cached_table
from mmscel.data.table_checks import check_scoring_tables, is_full_competition
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path
from mmscel.progress import track

WRITE_ROWS = 4_000_000  # rows per CSV slice: bounded memory, one progress step each


@dataclass
class EvaluationRows:
    """The evaluation rows as integer codes: task, cell and target position per row.

    Attributes
    ----------
    n_rows
        Number of evaluation rows.
    is_cite
        Bool per row: a CITEseq row (else Multiome).
    cell_code
        Int32 per row: position of the cell in its task's test inputs.
    target_code
        Int32 per row: column of the target in its task's targets.
    """

    n_rows: int
    is_cite: np.ndarray
    cell_code: np.ndarray
    target_code: np.ndarray


def evaluation_rows(data_dir: str | Path, cache_dir: str | Path | None = None) -> EvaluationRows:
    """Decode the cached ``evaluation.parquet`` against the cached test inputs and target names.

    Parameters
    ----------
    data_dir
        The prepared competition folder.
    cache_dir
        Its cache (None: ``data_dir/.cache``).

    Returns
    -------
    EvaluationRows
        Task, cell and target codes of every row of ``evaluation_ids.csv``, in order.

    Raises
    ------
    InputError
        When the cache is missing, stale or damaged, there are no evaluation ids, their number
        differs from ``sample_submission.csv``'s (or from the competition's, for its full test
        inputs), or a row names a cell in no test inputs file or a gene that is not a target of its task.
    """
    manifest = check_cache(data_dir, cache_dir, tables=("evaluation", "sample_submission"))
    cache = cache_dir_for(data_dir, cache_dir)
    path = cache / "evaluation.parquet"
    if not path.exists():
        raise InputError(Path(data_dir) / layout.EVALUATION_IDS, "file not found; it is needed to build a submission")
    _check_row_count(Path(data_dir), cache, manifest)
    table = read_cached_table(path, lambda where: pq.read_table(where, read_dictionary=["cell_id", "gene_id"]))
    cells = table.column("cell_id").combine_chunks()
    genes = table.column("gene_id").combine_chunks()
    cell_lookup, gene_lookup, technology = _lookups(cache)
    cell_dict = np.asarray(cells.dictionary.to_pylist(), dtype=object)
    gene_dict = np.asarray(genes.dictionary.to_pylist(), dtype=object)
    cell_task = np.array([technology.get(c, "") for c in cell_dict], dtype=object)
    unknown = np.flatnonzero(cell_task == "")
    if unknown.size:
        raise InputError(path, f"cell_id {shown(cell_dict[unknown[0]])} is in no test inputs file")
    row_cell = cells.indices.to_numpy(zero_copy_only=False)
    row_gene = genes.indices.to_numpy(zero_copy_only=False)
    is_cite = (cell_task == "cite")[row_cell]
    cell_pos = np.array([cell_lookup[c] for c in cell_dict], dtype=np.int32)
    gene_pos = np.full((len(gene_dict), 2), -1, dtype=np.int32)
    for j, gene in enumerate(gene_dict):
        gene_pos[j] = gene_lookup["cite"].get(gene, -1), gene_lookup["multi"].get(gene, -1)
    target_code = np.where(is_cite, gene_pos[row_gene, 0], gene_pos[row_gene, 1])
    if (target_code < 0).any():
        bad = np.flatnonzero(target_code < 0)[0]
        raise InputError(path, f"row {bad}: gene_id {shown(gene_dict[row_gene[bad]])} is not a target of its task")
    return EvaluationRows(len(row_cell), is_cite, cell_pos[row_cell], target_code.astype(np.int32))


def _check_row_count(data_dir: Path, cache: Path, manifest: dict) -> None:
    """The cached evaluation rows against the cached sample submission and the competition's count.

    ``prepare`` checks the same (:func:`~mmscel.data.table_checks.check_scoring_tables`)
    before caching the tables; a cache built by an older ``prepare`` was not.
    """
    entries = manifest["entries"]
    evaluation = cache / "evaluation.parquet"
    submission = cache / "sample_submission.parquet" if "sample_submission" in entries else None
    for table in (evaluation, submission):
        if table is not None:
            read_cached_table(table, pq.read_metadata)  # a damaged footer is named here, not inside the check
    test_shapes = {
        task.test_inputs: tuple(entries[task.test_inputs]["shape"])
        for task in (layout.CITE, layout.MULTI)
        if isinstance(entries.get(task.test_inputs), dict) and "shape" in entries[task.test_inputs]
    }
    sources = {"evaluation": data_dir / layout.EVALUATION_IDS, "sample_submission": data_dir / layout.SAMPLE_SUBMISSION}
    check_scoring_tables(evaluation, submission, sources, {}, is_full_competition(test_shapes))


def _lookups(cache: Path):
    cell_lookup, gene_lookup, technology = {}, {"cite": {}, "multi": {}}, {}
    for task in (layout.CITE, layout.MULTI):
        if not idxcol_path(cache, task.test_inputs).exists():
            continue
        ids = cached_idxcol(cache, task.test_inputs)[0]
        targets = cached_idxcol(cache, task.train_targets)[1]
        for i, cell in enumerate(ids):
            cell_lookup[cell] = i
            technology[cell] = task.name
        gene_lookup[task.name] = {g: i for i, g in enumerate(targets)}
    return cell_lookup, gene_lookup, technology


def mean_profile_values(
    data_dir: str | Path, cache_dir: str | Path | None = None, rows: EvaluationRows | None = None
) -> np.ndarray:
    """The floor submission: each target's mean over the training cells, for every evaluation row.

    Parameters
    ----------
    data_dir, cache_dir
        The prepared competition folder and its cache.
    rows
        The decoded evaluation rows (None: decode them here).

    Returns
    -------
    numpy.ndarray
        One float32 value per evaluation row.

    Raises
    ------
    InputError
        When the cache is missing or stale.
    """
    rows = rows or evaluation_rows(data_dir, cache_dir)
    cache = cache_dir_for(data_dir, cache_dir)
    values = np.zeros(rows.n_rows, dtype=np.float32)
    for task, mask in ((layout.CITE, rows.is_cite), (layout.MULTI, ~rows.is_cite)):
        if mask.any():
            targets, _, _ = load_matrix(cache, task.train_targets)
            mean = np.asarray(targets.mean(axis=0), dtype=np.float64).ravel()
            values[mask] = mean[rows.target_code[mask]]
    return values


def cell_starts(rows: EvaluationRows) -> np.ndarray:
    """Find where each cell's block of evaluation rows begins.

    Parameters
    ----------
    rows
        The decoded evaluation rows (each cell's rows are contiguous).

    Returns
    -------
    numpy.ndarray
        The first row of each block, starting with 0.
    """
    change = np.flatnonzero((np.diff(rows.cell_code) != 0) | (np.diff(rows.is_cite.astype(np.int8)) != 0)) + 1
    return np.concatenate([[0], change])


def validate_values(
    values: np.ndarray, n_rows: int, starts: np.ndarray | None, where: str, check_constant: bool = True
) -> None:
    """Refuse a submission with the wrong row count, non-finite values, or a constant cell.

    Parameters
    ----------
    values
        One value per evaluation row.
    n_rows
        The number of evaluation rows.
    starts
        First row of each cell (see :func:`cell_starts`); None skips the constant-cell check.
    where
        What to name in the error (a file, say).
    check_constant
        Whether a cell with one value on all its rows is refused.

    Raises
    ------
    InputError
        Naming ``where`` and the first offending row or cell.
    """
    if len(values) != n_rows:
        raise InputError(where, f"{len(values)} rows, expected {n_rows} (one per row of evaluation_ids.csv)")
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InputError(where, f"row_id {bad} is {values[bad]} (NaN or infinite values are not allowed)")
    if check_constant and starts is not None and len(starts):
        lo = np.minimum.reduceat(values, starts)
        hi = np.maximum.reduceat(values, starts)
        constant = np.flatnonzero(hi == lo)
        if constant.size:
            raise InputError(
                where, f"cell starting at row_id {starts[constant[0]]} has a constant prediction (Pearson undefined)"
            )


def write_submission(
    path: str | Path, values: np.ndarray, starts: np.ndarray | None = None, n_rows: int | None = None
) -> Path:
    """Validate a submission and write it as ``row_id,target`` CSV, atomically.

    Parameters
    ----------
    path
        The file to write (gzip when it ends in ``.gz``).
    values
        One value per evaluation row.
    starts
        First row of each cell, for the constant-cell check (None: no check).
    n_rows
        The number of evaluation rows (None: ``len(values)``).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        When the values fail :func:`validate_values` (nothing is written).
    """
    path = Path(path)
    values = np.asarray(values, dtype=np.float32)
    validate_values(values, len(values) if n_rows is None else n_rows, starts, str(path))
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with pa.CompressedOutputStream(str(tmp), "gzip") as stream:
                _write_rows(values, stream, path.name)
        else:
            _write_rows(values, str(tmp), path.name)
    return path


def _write_rows(values: np.ndarray, sink, label: str) -> None:
    """``row_id,target`` CSV in slices of ``WRITE_ROWS`` rows (65.7 million at full size), with progress."""
    schema = pa.schema([("row_id", pa.int64()), ("target", pa.float32())])
    starts = range(0, max(len(values), 1), WRITE_ROWS)
    with pacsv.CSVWriter(sink, schema) as writer:
        for start in track(starts, f"write {label} rows", total=len(starts)):
            part = values[start : start + WRITE_ROWS]
            rows = np.arange(start, start + len(part), dtype=np.int64)
            writer.write_table(pa.table({"row_id": rows, "target": part}, schema=schema))


def read_submission(path: str | Path, n_rows: int, rows_of: str = "evaluation_ids.csv") -> np.ndarray:
    """Read a submission's target column, checking columns, row count and row_id order.

    Parameters
    ----------
    path
        A ``row_id,target`` CSV (optionally gzipped).
    n_rows
        The number of evaluation rows.
    rows_of
        The file that says how many rows there are, named when the count differs.

    Returns
    -------
    numpy.ndarray
        The targets, float64, in row_id order.

    Raises
    ------
    InputError
        When the file is missing or unreadable, its columns, row count or row_id order are wrong,
        or a target is empty.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        table = pacsv.read_csv(
            str(path), convert_options=pacsv.ConvertOptions(column_types={"row_id": pa.int64(), "target": pa.float64()})
        )
    except Exception as exc:
        raise InputError(path, f"unreadable CSV: {' '.join(str(exc).split())[:160]}") from None
    if table.column_names[:2] != list(layout.SUBMISSION_COLUMNS):
        raise InputError(path, f"columns are {table.column_names}, expected row_id,target")
    row_id = table.column("row_id").to_numpy()
    if len(row_id) != n_rows:
        raise InputError(path, f"{len(row_id)} rows, expected {n_rows} (one per row of {rows_of})")
    out_of_order = np.flatnonzero(row_id != np.arange(n_rows))
    if out_of_order.size:
        i = int(out_of_order[0])
        raise InputError(path, f"row {i} has row_id {row_id[i]}, expected {i} (rows must follow sample_submission.csv)")
    target = table.column("target")
    if target.null_count:
        raise InputError(path, f"{target.null_count} empty target values")
    return target.to_numpy()


def submission_values(
    data_dir,
    cache_dir,
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]],
    rows: EvaluationRows | None = None,
) -> np.ndarray:
    """Evaluation-ordered values from per-task test predictions.

    ``predictions[task] = (test, components)``: ``test`` holds one row per test
    cell in test-input order; for Multiome coefficient predictions
    ``components`` (k x genes) maps them onto genes, and only the scored
    (cell, gene) entries are reconstructed, chunk by chunk. A task without
    predictions gets the mean profile.

    Parameters
    ----------
    data_dir, cache_dir
        The prepared competition folder, whose cache holds the mean profiles and evaluation rows.
    predictions
        Task -> (test, components or None, correction or None), as :func:`task_values` takes them.
    rows
        Evaluation rows decoded already, or None.

    Returns
    -------
    numpy.ndarray
        The submission's float32 values, in ``evaluation_ids.csv`` order.

    Raises
    ------
    InputError
        When ``rows`` is None and the evaluation rows cannot be decoded from the cache.
    """
    rows = rows or evaluation_rows(data_dir, cache_dir)
    complete = set(predictions) == {"cite", "multi"}
    values = np.zeros(rows.n_rows, np.float32) if complete else mean_profile_values(data_dir, cache_dir, rows)
    for task, mask in (("cite", rows.is_cite), ("multi", ~rows.is_cite)):
        if task in predictions and mask.any():
            values[mask] = task_values(rows, mask, *predictions[task])
    return values


def task_values(
    rows: EvaluationRows, mask: np.ndarray, test: np.ndarray, components: np.ndarray | None, correction=None
) -> np.ndarray:
    """Values of the evaluation rows selected by ``mask`` (one task) from its test predictions.

    Multiome coefficients are mapped onto genes for the scored entries only,
    two million rows at a time.

    Parameters
    ----------
    rows
        The decoded evaluation rows.
    mask
        The rows of one task.
    test
        That task's test predictions (test cells x targets, or x components).
    components
        Components x genes for coefficient predictions; None when ``test`` holds the targets.
    correction
        What to add at each (cell, target) pair (a blend's :class:`~mmscel.blend.cis.AppliedCis`), or None.

    Returns
    -------
    numpy.ndarray
        One float32 value per selected row.
    """
    where = np.flatnonzero(mask)
    out = np.empty(len(where), dtype=np.float32)
    for start in track(range(0, len(where), 2_000_000), "submission values", total=-(-len(where) // 2_000_000)):
        part = where[start : start + 2_000_000]
        cells, targets = rows.cell_code[part], rows.target_code[part]
        if components is None:
            out[start : start + len(part)] = test[cells, targets]
        else:
            out[start : start + len(part)] = np.einsum(
                "rk,kr->r", test[cells].astype(np.float32), components[:, targets]
            )
        if correction is not None:
            out[start : start + len(part)] += correction.at(cells, targets).astype(np.float32)
    return out
