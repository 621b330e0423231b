"""Products of a big matrix with tall dense matrices, in row blocks on all cores, in bounded memory.

scipy's sparse @ dense product runs on one core, and at the Multiome inputs'
width (228,942 peaks) it is bound by memory: every stored value fetches a row
of the dense factor from anywhere in its 126 MB. Here the rows are cut into
blocks multiplied in a thread pool (scipy's sparse kernels and BLAS release
the GIL). How a block is multiplied depends on its density:

- ``"dense"``: dense-ish blocks (the CITEseq inputs, ~19 %) are densified a
  few MB at a time and multiplied by BLAS (one BLAS thread per worker).
- ``"csc"``: sparse blocks are reordered once, in place, into column-major
  order (the block's row indices stored where its column indices were), so
  that both ``block @ Q`` and ``block.T @ P`` stream through ``Q`` and the
  output; the CSR is restored on :meth:`RowBlocks.close`. This needs
  writeable arrays and sorted column indices (or the round trip would not
  give the same arrays back).
- ``"csr"``: otherwise, scipy's product of each CSR row block.

Results do not depend on the number of threads: the blocks are cut from the
matrix alone, every block is multiplied single-threaded, and the
contributions of the blocks to ``A.T @ P`` are summed in block order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

DENSE_DENSITY = 0.1  # sparse blocks at least this dense are densified for BLAS
DENSE_BLOCK_BYTES = 32 * 2**20  # one densified block
SPARSE_BLOCK_NNZ = 2**24  # stored values per sparse block


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def sparse_block_bounds(indptr: np.ndarray, max_nnz: int) -> list[tuple[int, int]]:
    """Row ranges holding at most about ``max_nnz`` stored values each (at least one row each).

    Parameters
    ----------
    indptr
        The CSR row pointer.
    max_nnz
        Stored values a block should hold at most (a single longer row makes its own block).

    Returns
    -------
    list of (int, int)
        (first row, row after the last) of each block, in order.
    """
    n_rows, bounds, start = len(indptr) - 1, [], 0
    while start < n_rows:
        stop = int(np.searchsorted(indptr, indptr[start] + max_nnz, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        bounds.append((start, stop))
        start = stop
    return bounds


def _view(cls, data, indices, indptr, shape):
    # Assigned, not passed to the constructor: scipy copies a slice that is under half of its base array.
    out = cls(shape, dtype=data.dtype)
    out.data, out.indices, out.indptr = data, indices, indptr
    return out


class RowBlocks:
    """``A @ X`` and ``A.T @ Y`` for a CSR or dense ``A``, computed in row blocks by a thread pool.

    Use it as a context manager (or call :meth:`close`): a ``"csc"`` matrix is
    reordered in place while it is open and is a valid CSR again only after.

    Parameters
    ----------
    matrix
        Rows x columns: a CSR matrix (other sparse formats are converted) or a dense array.
    threads
        Worker threads (None: the cores this process may use).
    reorder
        Allow the in-place ``"csc"`` reordering of a sparse matrix (see the module's docstring).
    """

    def __init__(self, matrix, threads: int | None = None, reorder: bool = True):
        self.matrix = matrix.tocsr() if sp.issparse(matrix) and matrix.format != "csr" else matrix
        self.shape = self.matrix.shape
        self.dtype = np.dtype(np.float32 if self.matrix.dtype == np.float32 else np.float64)
        self.threads = max(1, threads or default_threads())
        self.kind = self._choose_kind(reorder)
        self.bounds = self._cut()
        self.columns: list[np.ndarray | None] = []  # "csc": the column pointers of each reordered block
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        if self.kind == "csc":
            self.columns = [None] * len(self.bounds)
            try:
                for _ in self._map(self._to_columns, range(len(self.bounds))):
                    pass
            except BaseException:
                self.close()  # the blocks reordered so far are put back
                raise

    def _choose_kind(self, reorder: bool) -> str:
        A = self.matrix
        if not sp.issparse(A):
            return "array"
        if A.nnz >= DENSE_DENSITY * max(1, A.shape[0] * A.shape[1]):
            return "dense"
        writeable = A.data.flags.writeable and A.indices.flags.writeable
        return "csc" if reorder and writeable and A.has_sorted_indices else "csr"

    def _cut(self) -> list[tuple[int, int]]:
        n_rows, n_cols = self.shape
        if self.kind in ("array", "dense"):
            step = max(1, DENSE_BLOCK_BYTES // max(1, n_cols * self.dtype.itemsize))
            return [(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]
        return sparse_block_bounds(self.matrix.indptr, SPARSE_BLOCK_NNZ)

    def __enter__(self) -> RowBlocks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Give the matrix back in CSR order and stop the threads."""
        if self.columns:
            done = [index for index, pointers in enumerate(self.columns) if pointers is not None]
            for _ in self._map(self._to_rows, done):
                pass
            self.columns = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _map(self, fn: Callable, items: Iterable, window: int | None = None) -> Iterator:
        """``fn`` over ``items`` on the pool, results in order, at most ``window`` waiting at a time."""
        # One BLAS thread per block: the pool is the parallelism, and a block's result must not depend on it.
        with threadpool_limits(1, user_api="blas"):
            if self._pool is None:
                yield from map(fn, items)
                return
            window = window or 2 * self.threads
            pending: deque = deque()
            try:
                for item in items:
                    pending.append(self._pool.submit(fn, item))
                    if len(pending) >= window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # on an error, nothing may still be writing when the caller cleans up
                for future in pending:
                    future.cancel()
                wait(pending)

    def _span(self, start: int, stop: int) -> tuple[int, int]:
        indptr = self.matrix.indptr
        return int(indptr[start]), int(indptr[stop])

    def _csr_block(self, start: int, stop: int) -> sp.csr_matrix:
        A = self.matrix
        lo, hi = self._span(start, stop)
        indptr = (A.indptr[start : stop + 1] - lo).astype(A.indices.dtype)  # scipy wants one index dtype
        return _view(sp.csr_matrix, A.data[lo:hi], A.indices[lo:hi], indptr, (stop - start, A.shape[1]))

    def _to_columns(self, index: int) -> None:
        start, stop = self.bounds[index]
        lo, hi = self._span(start, stop)
        csc = self._csr_block(start, stop).tocsc()
        self.matrix.data[lo:hi], self.matrix.indices[lo:hi] = csc.data, csc.indices
        self.columns[index] = csc.indptr.astype(self.matrix.indices.dtype)

    def _to_rows(self, index: int) -> None:
        start, stop = self.bounds[index]
        lo, hi = self._span(start, stop)
        csr = self._block(index).tocsr()
        self.matrix.data[lo:hi], self.matrix.indices[lo:hi] = csr.data, csr.indices

    def _block(self, index: int):
        """Block ``index`` as scipy (or numpy) multiplies it best."""
        start, stop = self.bounds[index]
        A = self.matrix
        if self.kind == "array":
            return A[start:stop]
        if self.kind == "csc":
            lo, hi = self._span(start, stop)
            shape = (stop - start, A.shape[1])
            return _view(sp.csc_matrix, A.data[lo:hi], A.indices[lo:hi], self.columns[index], shape)
        block = self._csr_block(start, stop)
        return block.toarray() if self.kind == "dense" else block

    def matmat(self, X: np.ndarray) -> np.ndarray:
        """``A @ X``, rows x ``X.shape[1]``, in the working dtype."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        out = np.empty((self.shape[0], X.shape[1]), self.dtype)

        def one(index: int) -> None:
            start, stop = self.bounds[index]
            out[start:stop] = self._block(index) @ X

        for _ in self._map(one, range(len(self.bounds))):
            pass
        return out

    def rmatmat(self, Y: np.ndarray) -> np.ndarray:
        """``A.T @ Y``, columns x ``Y.shape[1]``: the blocks' contributions summed in block order."""
        Y = np.ascontiguousarray(Y, dtype=self.dtype)

        def one(index: int) -> np.ndarray:
            start, stop = self.bounds[index]
            return np.asarray(self._block(index).T @ Y[start:stop])

        out = np.zeros((self.shape[1], Y.shape[1]), self.dtype)
        for part in self._map(one, range(len(self.bounds)), window=self.threads + 1):
            out += part
        return out

    def column_moments(self) -> tuple[np.ndarray, float]:
        """Column sums and the sum of all squared values, in float64 (for the total variance)."""

        def one(index: int) -> tuple[np.ndarray, float]:
            block = self._block(index)
            if not sp.issparse(block):
                return block.sum(axis=0, dtype=np.float64), float(np.square(block, dtype=np.float64).sum())
            values = block.data.astype(np.float64)
            if block.format == "csr":
                return np.bincount(block.indices, weights=values, minlength=self.shape[1]), float(values @ values)
            running = np.concatenate([[0.0], np.cumsum(values)])
            return running[block.indptr[1:]] - running[block.indptr[:-1]], float(values @ values)

        sums, squares = np.zeros(self.shape[1]), 0.0
        for part_sums, part_squares in self._map(one, range(len(self.bounds)), window=self.threads + 1):
            sums += part_sums
            squares += part_squares
        return sums, squares
