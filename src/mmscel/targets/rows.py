"""Per-cell transforms of the scored targets: quantile clipping and median normalisation.

The dense versions act on protein matrices; the sparse ones change the stored
values of a CSR gene matrix in place, a few thousand rows at a time, so a
full-size Multiome target matrix is never dense.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DENSE_CHUNK_VALUES = 2**22  # values of a densified block of sparse rows (16 MB as float32)


def clip_rows(values: np.ndarray, q: float) -> np.ndarray:
    """Clip each row to its own ``[q, 1 - q]`` quantiles.

    Parameters
    ----------
    values
        Cells x targets, dense.
    q
        Lower quantile (the upper one is ``1 - q``); 0 returns ``values`` unchanged.

    Returns
    -------
    numpy.ndarray
        A clipped float32 copy (``values`` itself when ``q`` is 0).
    """
    if q <= 0:
        return values
    low, high = np.quantile(values, [q, 1.0 - q], axis=1)
    return np.clip(values, low[:, None], high[:, None]).astype(np.float32)


def median_scale_rows(values: np.ndarray) -> np.ndarray:
    """Divide each row by its median; rows whose median is not positive are left as they are.

    Parameters
    ----------
    values
        Cells x targets, dense.

    Returns
    -------
    numpy.ndarray
        A float32 copy.
    """
    median = np.median(values, axis=1)
    scale = np.where(median > 0, median, 1.0)
    return (values / scale[:, None]).astype(np.float32)


def _row_slices(matrix: sp.csr_matrix, rows_per_chunk: int):
    for start in range(0, matrix.shape[0], rows_per_chunk):
        yield start, min(start + rows_per_chunk, matrix.shape[0])


def clip_sparse_rows(matrix: sp.csr_matrix, q: float) -> None:
    """Clip the stored values of each row to the row's ``[q, 1 - q]`` quantiles, in place.

    The quantiles count the row's implicit zeros (as those of the dense row
    would); the implicit zeros themselves are left as they are, so the matrix
    stays sparse.

    Parameters
    ----------
    matrix
        Cells x genes, CSR with writable values.
    q
        Lower quantile (the upper one is ``1 - q``); 0 does nothing.
    """
    if q <= 0 or matrix.shape[0] == 0:
        return
    rows_per_chunk = max(1, DENSE_CHUNK_VALUES // max(1, matrix.shape[1]))
    for start, stop in _row_slices(matrix, rows_per_chunk):
        low, high = np.quantile(matrix[start:stop].toarray(), [q, 1.0 - q], axis=1)
        lo, hi = matrix.indptr[start], matrix.indptr[stop]
        counts = np.diff(matrix.indptr[start : stop + 1])
        values = matrix.data[lo:hi]  # a view: clipped in place
        np.clip(values, np.repeat(low, counts), np.repeat(high, counts), out=values, casting="unsafe")


def sparse_row_medians(matrix: sp.csr_matrix, values: np.ndarray | None = None) -> np.ndarray:
    """Median of the stored values of each row (0 for a row without any).

    Parameters
    ----------
    matrix
        A CSR matrix.
    values
        Values to take in place of ``matrix.data`` (same length), e.g. a transform of them.

    Returns
    -------
    numpy.ndarray
        One float64 median per row, the mean of the two middle values for an even count.
    """
    values = matrix.data if values is None else values
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    ordered = values[np.lexsort((values, rows))].astype(np.float64)
    start = matrix.indptr[:-1]
    safe = np.maximum(len(ordered) - 1, 0)
    low = ordered[np.minimum(start + np.maximum(counts - 1, 0) // 2, safe)] if len(ordered) else np.zeros(len(counts))
    high = ordered[np.minimum(start + counts // 2, safe)] if len(ordered) else np.zeros(len(counts))
    return np.where(counts > 0, (low + high) / 2, 0.0)


def median_normalize_sparse_rows(matrix: sp.csr_matrix, rows_per_chunk: int = 2048) -> None:
    """Rescale log1p counts per cell, in place: ``log1p(expm1(y) / m)``, ``m`` the median of the cell's non-zero counts.

    Parameters
    ----------
    matrix
        Cells x genes of log1p-normalised counts, CSR with writable values (zeros stay zeros).
    rows_per_chunk
        Rows handled at a time.
    """
    for start, stop in _row_slices(matrix, rows_per_chunk):
        lo, hi = matrix.indptr[start], matrix.indptr[stop]
        block = sp.csr_matrix(
            (matrix.data[lo:hi], matrix.indices[lo:hi], matrix.indptr[start : stop + 1] - lo),
            shape=(stop - start, matrix.shape[1]),
        )
        counts = np.expm1(block.data.astype(np.float64))
        median = sparse_row_medians(block, counts)
        scale = np.repeat(np.where(median > 0, median, 1.0), np.diff(block.indptr))
        matrix.data[lo:hi] = np.log1p(counts / scale)
