"""Values a matrix may not hold: NaN or infinity anywhere, negatives where counts are expected.

The competition's inputs are counts normalised per cell (log1p of library-size
normalised RNA, TF-IDF of ATAC) and the ``*_raw`` files hold the counts
themselves, so none of them can be negative; the CITEseq targets are
dsb-normalised protein levels, which can, and so can the Multiome targets of
an import whose layer was scaled. A check costs a minimum and a maximum over
the non-zero values of a chunk; the first bad value is located only when one
is found.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmscel.data import layout
from mmscel.data.error_text import shown
from mmscel.data.sparse_npz import CsrParts


class BadValue(NamedTuple):
    """The first value a matrix may not hold.

    Attributes
    ----------
    row, column : int
        Its position, counted from 0 (the row within the values checked).
    value : float
        The value itself.
    """

    row: int
    column: int
    value: float


def counts_expected(stem: str) -> bool:
    """Whether the matrix ``stem`` holds counts or a per-cell normalisation of them, so no negative values.

    Parameters
    ----------
    stem : str
        A matrix's file stem.

    Returns
    -------
    bool
        True for every input matrix and every ``*_raw`` file; False for the normalised targets.
    """
    return stem.endswith(layout.RAW_SUFFIX) or "_inputs" in stem


def first_bad_value(parts: CsrParts, counts: bool) -> BadValue | None:
    """The first non-finite value of CSR rows, or negative one when they hold counts.

    Parameters
    ----------
    parts : CsrParts
        The rows; only the stored values are checked (a zero is always allowed).
    counts : bool
        Refuse negative values too.

    Returns
    -------
    BadValue or None
        The first bad value in row order (the lowest column of its row), or None.
    """
    data = parts.data
    if not data.size or _all_good(data, counts):
        return None
    bad = _bad_mask(data, counts)
    first = int(np.argmax(bad))
    ends = np.cumsum(parts.counts)
    row = int(np.searchsorted(ends, first, side="right"))
    start = int(ends[row] - parts.counts[row])
    in_row = np.flatnonzero(bad[start : int(ends[row])]) + start
    at = int(in_row[np.argmin(parts.indices[in_row])])
    return BadValue(row, int(parts.indices[at]), float(data[at]))


def first_bad_dense(block: np.ndarray, counts: bool) -> BadValue | None:
    """The first non-finite value of dense rows, or negative one when they hold counts.

    Parameters
    ----------
    block : numpy.ndarray
        Rows x columns.
    counts : bool
        Refuse negative values too.

    Returns
    -------
    BadValue or None
        The first bad value in row-major order, or None.
    """
    if not block.size or _all_good(block, counts):
        return None
    row, column = np.unravel_index(int(np.argmax(_bad_mask(block, counts))), block.shape)
    return BadValue(int(row), int(column), float(block[row, column]))


def describe(bad: BadValue, row_name: str, column_name: str, row_offset: int = 0) -> str:
    """One line saying what the bad value is and where it sits.

    Parameters
    ----------
    bad : BadValue
        As found by :func:`first_bad_value` or :func:`first_bad_dense`.
    row_name, column_name : str
        The cell id of its row and the name of its column.
    row_offset : int
        Added to ``bad.row`` (the first row of the chunk checked).

    Returns
    -------
    str
        The problem, for an :class:`~mmscel.errors.InputError` naming the file.
    """
    where = f"at row {bad.row + row_offset} (cell {shown(row_name)}), column {bad.column} ({shown(column_name)})"
    if not np.isfinite(bad.value):
        return f"non-finite value {bad.value} {where}; every value must be a finite number"
    return f"negative value {bad.value:g} {where}; counts and their normalisation cannot be negative"


def _all_good(values: np.ndarray, counts: bool) -> bool:
    """A NaN makes the minimum NaN and an infinity shows in the minimum or maximum."""
    low, high = values.min(), values.max()
    return bool(np.isfinite(low) and np.isfinite(high) and (not counts or low >= 0))


def _bad_mask(values: np.ndarray, counts: bool) -> np.ndarray:
    bad = ~np.isfinite(values)
    if counts:
        bad |= values < 0
    return bad
