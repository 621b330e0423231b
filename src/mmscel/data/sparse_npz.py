"""Stream a CSR matrix to a scipy ``.npz`` file row chunk by row chunk.

``scipy.sparse.save_npz`` needs the whole matrix in memory; this writer keeps
only the current chunk and the row pointer, spilling values and column
indices to scratch files that are then copied into the zip archive. The
result loads with ``scipy.sparse.load_npz``.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

_COPY_BLOCK = 2**26
_SCAN_ROWS = 64


class CsrParts(NamedTuple):
    """A block of rows in CSR form.

    Attributes
    ----------
    data : numpy.ndarray
        The non-zero values, row after row.
    indices : numpy.ndarray
        The int32 column of each value.
    counts : numpy.ndarray
        The number of values in each row.
    """

    data: np.ndarray
    indices: np.ndarray
    counts: np.ndarray


def dense_to_csr_parts(block: np.ndarray) -> CsrParts:
    """Split a dense float block into CSR parts (columns sorted, zeros and -0.0 dropped).

    Scans ``_SCAN_ROWS`` rows at a time: the flat positions of a sub-block fit
    in int32 and its mask stays in cache, so no int64 division (``% n_columns``)
    is needed to recover the columns; measured 2.5x faster than one mask over
    the whole block at 20-30 % non-zeros.

    Parameters
    ----------
    block : numpy.ndarray
        Dense rows; cast to float32.

    Returns
    -------
    CsrParts
        Float32 values, int32 columns and int64 counts.
    """
    block = np.asarray(block, dtype=np.float32)
    n_rows, n_columns = block.shape
    step = max(1, min(_SCAN_ROWS, (2**31 - 1) // max(1, n_columns)))
    data, indices, counts = [], [], []
    for start in range(0, n_rows, step):
        sub = block[start : start + step]
        mask = sub != 0
        count = np.count_nonzero(mask, axis=1)
        row_offsets = np.repeat(np.arange(len(sub), dtype=np.int32) * np.int32(n_columns), count)
        indices.append(np.flatnonzero(mask).astype(np.int32) - row_offsets)
        data.append(sub[mask])
        counts.append(count)
    if not counts:
        return CsrParts(np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64))
    return CsrParts(np.concatenate(data), np.concatenate(indices), np.concatenate(counts).astype(np.int64))


class SparseNpzWriter:
    """Append CSR row blocks; :meth:`close` writes ``path`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.
    n_columns : int
        Width of the matrix.
    compress : bool
        Deflate the archive's members.
    """

    def __init__(self, path: str | Path, n_columns: int, compress: bool = False):
        self.path = Path(path)
        self.n_columns = n_columns
        self.compress = compress
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._data_path = self._tmp.with_suffix(".data")
        self._indices_path = self._tmp.with_suffix(".indices")
        self._data = self._data_path.open("wb")
        self._indices = self._indices_path.open("wb")
        self._indptr = [np.zeros(1, dtype=np.int64)]
        self.nnz = 0
        self.n_rows = 0

    def write_dense(self, block: np.ndarray) -> None:
        """Append rows given densely (zeros are dropped).

        Parameters
        ----------
        block : numpy.ndarray
            Dense rows, ``n_columns`` wide.
        """
        self.write_parts(dense_to_csr_parts(block))

    def write_parts(self, parts: CsrParts) -> None:
        """Append rows already split into CSR parts.

        Parameters
        ----------
        parts : CsrParts
            As :func:`dense_to_csr_parts` makes them.
        """
        self._append(parts.data, parts.indices, parts.counts)

    def write_csr(self, block: sp.csr_matrix) -> None:
        """Append rows given as a CSR matrix (duplicate entries summed).

        Parameters
        ----------
        block : scipy.sparse.csr_matrix
            Rows ``n_columns`` wide.
        """
        block = sp.csr_matrix(block)
        block.sum_duplicates()
        self._append(block.data.astype(np.float32, copy=False), block.indices.astype(np.int32), np.diff(block.indptr))

    def _append(self, data: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> None:
        self._data.write(memoryview(np.ascontiguousarray(data, dtype="<f4")).cast("B"))
        self._indices.write(memoryview(np.ascontiguousarray(indices, dtype="<i4")).cast("B"))
        self._indptr.append(self.nnz + np.cumsum(counts, dtype=np.int64))
        self.nnz += int(counts.sum())
        self.n_rows += len(counts)

    def close(self) -> Path:
        """Assemble the ``.npz`` archive and move it onto ``path``.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        self._data.close()
        self._indices.close()
        index_dtype = "<i4" if self.nnz < 2**31 else "<i8"
        indptr = np.concatenate(self._indptr).astype(index_dtype)
        mode = zipfile.ZIP_DEFLATED if self.compress else zipfile.ZIP_STORED
        try:
            with zipfile.ZipFile(self._tmp, "w", compression=mode, allowZip64=True) as archive:
                self._copy_entry(archive, "indices.npy", self._indices_path, "<i4", index_dtype)
                self._small_entry(archive, "indptr.npy", indptr)
                self._small_entry(archive, "format.npy", np.array(b"csr"))
                self._small_entry(archive, "shape.npy", np.array([self.n_rows, self.n_columns], dtype=np.int64))
                self._copy_entry(archive, "data.npy", self._data_path, "<f4", "<f4")
            os.replace(self._tmp, self.path)
        finally:
            self.abort()
        return self.path

    def _copy_entry(self, archive, name, source: Path, stored: str, wanted: str) -> None:
        with archive.open(name, "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_2_0(entry, {"descr": wanted, "fortran_order": False, "shape": (self.nnz,)})
            with source.open("rb") as handle:
                if stored == wanted:
                    shutil.copyfileobj(handle, entry, _COPY_BLOCK)
                    return
                while chunk := handle.read(_COPY_BLOCK):
                    entry.write(np.frombuffer(chunk, dtype=stored).astype(wanted).tobytes())

    @staticmethod
    def _small_entry(archive, name, array) -> None:
        with archive.open(name, "w", force_zip64=True) as entry:
            np.lib.format.write_array(entry, array, allow_pickle=False)

    def abort(self) -> None:
        """Remove scratch files (the final path is untouched)."""
        for handle in (self._data, self._indices):
            handle.close()
        for path in (self._data_path, self._indices_path, self._tmp):
            path.unlink(missing_ok=True)


class StackedReadError(ValueError):
    """A file :func:`read_stacked` could not read: ``path`` names it, the message says what failed.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    problem : str
        What failed (a CRC-32 mismatch, a cut archive, inconsistent arrays).
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        super().__init__(problem)


def read_stacked(paths: list[str | Path]) -> sp.csr_matrix:
    """Read CSR ``.npz`` files (as written by :class:`SparseNpzWriter`) as one matrix, rows stacked in order.

    The values and column indices are read straight into the stacked arrays, so
    the peak memory is the size of the result: ``scipy.sparse.load_npz`` followed
    by ``vstack`` holds every matrix twice (~14 GB for the full Multiome inputs).

    Parameters
    ----------
    paths : list of str or pathlib.Path
        The files, all with the same number of columns.

    Returns
    -------
    scipy.sparse.csr_matrix
        Float32 values (what the cache stores).

    Raises
    ------
    ValueError
        If the widths differ.
    StackedReadError
        If a file is not a plain CSR matrix, or is inconsistent, truncated or
        damaged (a zip member whose CRC-32 does not match): a ``ValueError`` naming the file.
    """
    headers = [_named_errors(path, _csr_headers, Path(path)) for path in paths]
    widths = {shape[1] for shape, _ in headers}
    if len(widths) > 1:
        raise ValueError(f"cannot stack matrices with {sorted(widths)} columns")
    nnz = sum(sizes["data"] for _, sizes in headers)
    index_dtype = np.int32 if nnz < 2**31 else np.int64
    data = np.empty(nnz, np.float32)
    indices = np.empty(nnz, index_dtype)
    indptr = [np.zeros(1, index_dtype)]
    start = 0
    for path, (shape, sizes) in zip(paths, headers):
        stop = start + sizes["data"]
        pointer = np.empty(shape[0] + 1, index_dtype)
        _named_errors(path, _read_arrays, path, data[start:stop], indices[start:stop], pointer)
        if pointer[0] != 0 or pointer[-1] != sizes["data"] or (np.diff(pointer) < 0).any():
            raise StackedReadError(path, f"{Path(path).name} has an inconsistent row pointer")
        indptr.append(pointer[1:] + start)
        start = stop
    n_rows = sum(shape[0] for shape, _ in headers)
    return sp.csr_matrix(
        (data, indices, np.concatenate(indptr)), shape=(n_rows, widths.pop() if widths else 0), copy=False
    )


def _named_errors(path, function, *args):
    """``function(*args)``, any error it raises re-raised as a :class:`StackedReadError` naming ``path``."""
    try:
        return function(*args)
    except (StackedReadError, MemoryError):
        raise
    except Exception as exc:
        raise StackedReadError(path, " ".join(str(exc).split()) or type(exc).__name__) from exc


def _read_arrays(path, data: np.ndarray, indices: np.ndarray, pointer: np.ndarray) -> None:
    """Read a CSR ``.npz`` file's three arrays into ``data``, ``indices`` and ``pointer``."""
    with zipfile.ZipFile(path) as archive:
        _read_member(archive, "data.npy", data)
        _read_member(archive, "indices.npy", indices)
        _read_member(archive, "indptr.npy", pointer)


def _csr_headers(path: Path) -> tuple[tuple[int, int], dict[str, int]]:
    """(shape, element count of each array) of a CSR ``.npz``, reading only the headers."""
    with zipfile.ZipFile(path) as archive:
        with archive.open("format.npy") as handle:
            if np.lib.format.read_array(handle, allow_pickle=False).item() != b"csr":
                raise ValueError(f"{path.name} is not a CSR matrix")
        with archive.open("shape.npy") as handle:
            shape = tuple(int(n) for n in np.lib.format.read_array(handle, allow_pickle=False))
        sizes = {}
        for name in ("data", "indices", "indptr"):
            with archive.open(f"{name}.npy") as handle:
                header_shape, _, _ = _read_header(handle)
                sizes[name] = int(np.prod(header_shape))
    if sizes["data"] != sizes["indices"] or sizes["indptr"] != shape[0] + 1:
        raise ValueError(f"{path.name} has inconsistent CSR arrays")
    return shape, sizes


def _read_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(handle)
    if dtype.hasobject or fortran_order:
        raise ValueError("not a plain numeric array")
    return shape, fortran_order, dtype


def _read_member(archive: zipfile.ZipFile, name: str, out: np.ndarray) -> None:
    """Read one ``.npy`` member of ``archive`` into ``out`` in blocks, converting its dtype if needed."""
    with archive.open(name) as handle:
        shape, _, dtype = _read_header(handle)
        if int(np.prod(shape)) != len(out):
            raise ValueError(f"{name} holds {int(np.prod(shape))} values, expected {len(out)}")
        step = max(1, _COPY_BLOCK // dtype.itemsize)
        for first in range(0, len(out), step):
            count = min(step, len(out) - first)
            block = handle.read(count * dtype.itemsize)
            if len(block) != count * dtype.itemsize:
                raise ValueError(f"{name} is truncated")
            out[first : first + count] = np.frombuffer(block, dtype=dtype)
