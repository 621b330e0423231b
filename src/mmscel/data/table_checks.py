"""Checks of the competition's tables: metadata values, and the scoring tables against each other.

``metadata.csv`` decides the folds and the last-day holdout, so a blank or text
day, a missing donor or a repeated cell is refused rather than silently
changing them. ``evaluation_ids.csv`` and ``sample_submission.csv`` list the
same row ids in the same order, and every evaluated cell is a test cell; a
file cut short or from another release is refused before it reaches the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.data.error_text import shown
from mmscel.errors import InputError

_SCAN_ROWS = 1 << 20


def check_metadata(source: Path, frame: pd.DataFrame) -> None:
    """Refuse metadata whose cells lack an id, a whole-number day or a donor, or repeat an id.

    Parameters
    ----------
    source : pathlib.Path
        The CSV file, named in the error.
    frame : pandas.DataFrame
        Its rows, with at least the columns ``cell_id``, ``day`` and ``donor``.

    Raises
    ------
    InputError
        Naming the column and the first bad row (counted from 1, the header not counted) and its cell id.
    """
    cell_id = frame["cell_id"]
    _refuse_first(source, frame, "cell_id", _blank(cell_id), "an id")
    duplicated = cell_id.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise InputError(source, f"cell_id {shown(cell_id.iloc[row])} on row {row + 1} appears more than once")
    _refuse_first(source, frame, "day", ~_whole_numbers(frame["day"]), "a whole-number day")
    _refuse_first(source, frame, "donor", _blank(frame["donor"]), "a donor")


def check_scoring_tables(
    evaluation: Path | None,
    submission: Path | None,
    sources: Mapping[str, Path],
    test_cells: Mapping[str, np.ndarray],
    full_competition: bool,
) -> None:
    """Cross-check the evaluation rows against the sample submission and the test inputs.

    Parameters
    ----------
    evaluation, submission : pathlib.Path or None
        The parquet files converted from ``evaluation_ids.csv`` and
        ``sample_submission.csv`` (either may be absent); their row ids have
        been checked to count up from 0.
    sources : mapping of str to pathlib.Path
        The CSV files, by table name ('evaluation', 'sample_submission'), named in errors.
    test_cells : mapping of str to numpy.ndarray
        Cell ids of each test input matrix, by stem.
    full_competition : bool
        The test inputs have the competition's full shapes: the row count is known too.

    Raises
    ------
    InputError
        If the two tables differ in length, the count is not the competition's,
        or an evaluated cell is not a test cell.
    """
    if evaluation is None:
        return
    where = sources["evaluation"]
    rows = pq.ParquetFile(evaluation).metadata.num_rows
    if submission is not None:
        other = pq.ParquetFile(submission).metadata.num_rows
        if other != rows:
            name = sources["sample_submission"].name
            problem = f"{rows:,} rows but {name} has {other:,}; both list the same row_ids in order (one is cut short?)"
            raise InputError(where, problem)
    if full_competition and rows != layout.FULL_SUBMISSION_ROWS:
        expected = layout.FULL_SUBMISSION_ROWS
        raise InputError(where, f"{rows:,} rows; the competition's has {expected:,} (cut short, or another release?)")
    if test_cells:
        _check_cells_are_test_cells(where, evaluation, test_cells)


def is_full_competition(test_shapes: Mapping[str, tuple[int, int]]) -> bool:
    """Whether the test inputs of both tasks have the competition's exact shapes.

    Parameters
    ----------
    test_shapes : mapping of str to tuple of int
        (rows, columns) of each test input matrix, by stem.

    Returns
    -------
    bool
        True for the Kaggle files (and the ``full`` synthetic scale, which has their shapes).
    """
    wanted = {
        task.test_inputs: (layout.FULL_SHAPES[task.name]["test"], layout.FULL_SHAPES[task.name]["inputs"])
        for task in (layout.CITE, layout.MULTI)
    }
    return all(tuple(test_shapes.get(stem, ())) == shape for stem, shape in wanted.items())


def _check_cells_are_test_cells(where: Path, evaluation: Path, test_cells: Mapping[str, np.ndarray]) -> None:
    """Each column chunk's dictionary holds its distinct cell ids: no string is decoded per row."""
    known = set()
    for cells in test_cells.values():
        known.update(np.asarray(cells, dtype=str).tolist())
    table = pq.ParquetFile(evaluation, read_dictionary=["cell_id"])
    unknown: set[str] = set()
    for batch in table.iter_batches(batch_size=_SCAN_ROWS, columns=["cell_id"]):
        column = batch.column(0)
        values = column.dictionary if isinstance(column, pa.DictionaryArray) else pc.unique(column)
        unknown.update(cell for cell in values.to_pylist() if cell not in known)
    if unknown:
        row, cell = _first_row_of(table, unknown)
        files = ", ".join(f"{stem}.h5" for stem in test_cells)
        problem = f"cell_id {shown(cell)} of row_id {row} is not a cell of the test inputs ({files})"
        raise InputError(where, f"{problem}; unknown cell ids: {len(unknown)}")


def _first_row_of(table: pq.ParquetFile, cells: set[str]) -> tuple[int, str]:
    """Row (from 0) and cell of the first evaluation row whose cell is one of ``cells``."""
    offset = 0
    wanted = pa.array(list(cells), type=pa.string())
    for batch in table.iter_batches(batch_size=_SCAN_ROWS, columns=["cell_id"]):
        column = batch.column(0)
        if isinstance(column, pa.DictionaryArray):
            column = column.dictionary_decode()
        hits = pc.is_in(column, value_set=wanted).to_numpy(zero_copy_only=False)
        if hits.any():
            first = int(np.argmax(hits))
            return offset + first, column[first].as_py()
        offset += len(column)
    raise AssertionError("unreachable: the cells were found in the first scan")


def _refuse_first(source: Path, frame: pd.DataFrame, column: str, bad: np.ndarray, need: str) -> None:
    if not bad.any():
        return
    row = int(np.argmax(bad))
    value = frame[column].iloc[row]
    text = "blank" if _is_missing(value) else shown(str(value))
    cell = "" if column == "cell_id" else f" (cell_id {shown(frame['cell_id'].iloc[row])})"
    raise InputError(source, f"{column} on row {row + 1}{cell} is {text}; every cell needs {need}")


def _blank(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy()
    if values.dtype == object:
        missing |= values.astype(str).str.strip().eq("").to_numpy()
    return missing


def _whole_numbers(values: pd.Series) -> np.ndarray:
    """True where a day is a whole number; a blank or text day is not."""
    if pd.api.types.is_bool_dtype(values):
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_integer_dtype(values):
        return np.ones(len(values), dtype=bool)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.isfinite(numeric) & (numeric == np.round(numeric))


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""
