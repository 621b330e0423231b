"""Write a pandas fixed-format HDF5 frame in row chunks with PyTables.

pandas can only write such a frame whole; :class:`FrameWriter` appends rows
chunk by chunk, so memory stays bounded by the chunk size whatever the file size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tables

from mmscel.data.h5_format import FLOAT32_BYTES, encode_names, rows_per_chunk

HDF5_CHUNK_BYTES = 2**20
_FRAME_ATTRS = {
    "pandas_type": "frame",
    "pandas_version": "0.15.2",
    "encoding": "UTF-8",
    "errors": "strict",
    "ndim": 2,
}


class FrameWriter:
    """Write a float frame to a pandas fixed-format HDF5 file, row chunk by row chunk.

    The file is written under a hidden per-process temporary name beside
    ``path`` and renamed on a successful :meth:`close`, so an interrupted write
    never leaves a half-written file under the final name.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.h5`` file to write.
    key : str
        Name of the group (the competition uses the file stem).
    index : sequence of str
        Row names (cell ids), in row order.
    columns : sequence of str
        Column names, in column order.
    blocks : sequence of numpy.ndarray, optional
        Column positions of each pandas block; by default all columns form ``block0``.
    index_name, columns_name : str
        The names pandas gives the two axes.
    complevel : int
        Blosc compression level (0 writes uncompressed arrays).

    Raises
    ------
    ValueError
        If ``blocks`` does not partition the columns.
    """

    def __init__(
        self,
        path: str | Path,
        key: str,
        index: Sequence[str],
        columns: Sequence[str],
        blocks: Sequence[np.ndarray] | None = None,
        index_name: str = "cell_id",
        columns_name: str = "gene_id",
        complevel: int = 5,
    ):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.n_rows, self.n_columns = len(index), len(columns)
        self.blocks = _checked_blocks(blocks, self.n_columns)
        self.filters = tables.Filters(complevel=complevel, complib="blosc", shuffle=True) if complevel else None
        self.rows_written = 0
        self._file = tables.open_file(str(self.tmp_path), mode="w")
        try:
            self._values = self._create_layout(key, index, columns, index_name, columns_name)
        except BaseException:
            self.abort()
            raise

    def _create_layout(self, key, index, columns, index_name, columns_name) -> list[tables.CArray]:
        group = self._file.create_group("/", key)
        attrs = group._v_attrs
        for name, value in _FRAME_ATTRS.items():
            setattr(attrs, name, value)
        attrs.nblocks = len(self.blocks)
        attrs.axis0_variety = "regular"
        attrs.axis1_variety = "regular"
        column_names = np.asarray(list(columns), dtype=object)
        self._write_names(group, "axis0", column_names, columns_name)
        self._write_names(group, "axis1", list(index), index_name)
        values = []
        for i, positions in enumerate(self.blocks):
            setattr(attrs, f"block{i}_items_variety", "regular")
            self._write_names(group, f"block{i}_items", column_names[positions], columns_name)
            values.append(self._create_values(group, f"block{i}_values", len(positions)))
        return values

    def _create_values(self, group, name: str, n_columns: int) -> tables.CArray:
        width = max(1, n_columns)
        chunk_rows = max(1, min(self.n_rows or 1, HDF5_CHUNK_BYTES // (FLOAT32_BYTES * width)))
        node = self._file.create_carray(
            group,
            name,
            atom=tables.Float32Atom(),
            shape=(self.n_rows, n_columns),
            filters=self.filters,
            chunkshape=(chunk_rows, width) if self.n_rows and n_columns else None,
            track_times=False,  # same seed, same bytes
        )
        node._v_attrs.transposed = True
        return node

    def _write_names(self, group, name, names, axis_name) -> None:
        encoded = encode_names(names)
        if self.filters is not None and encoded.size:
            node = self._file.create_carray(group, name, obj=encoded, filters=self.filters, track_times=False)
        else:
            node = self._file.create_array(group, name, obj=encoded, track_times=False)
        node._v_attrs.kind = "string"
        node._v_attrs.name = axis_name
        node._v_attrs.transposed = True

    def write(self, chunk: np.ndarray) -> None:
        """Append the next rows.

        Parameters
        ----------
        chunk : numpy.ndarray
            A dense ``rows x columns`` array in column order; cast to float32.

        Raises
        ------
        ValueError
            If the chunk is not that wide, or holds more rows than remain.
        """
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[1] != self.n_columns:
            raise ValueError(f"chunk of shape {chunk.shape}, expected (*, {self.n_columns})")
        start, stop = self.rows_written, self.rows_written + chunk.shape[0]
        if stop > self.n_rows:
            raise ValueError(f"{stop} rows written, the frame has {self.n_rows}")
        for positions, node in zip(self.blocks, self._values):
            if len(positions):
                node[start:stop] = chunk if len(self.blocks) == 1 else chunk[:, positions]
        self.rows_written = stop

    def close(self) -> Path:
        """Finish the file and move it to its final name.

        Returns
        -------
        pathlib.Path
            The final path.

        Raises
        ------
        ValueError
            If fewer rows were written than the frame has; the file is then dropped.
        """
        if self.rows_written != self.n_rows:
            self.abort()
            raise ValueError(f"{self.path}: {self.rows_written} of {self.n_rows} rows written")
        self._file.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the final path is left untouched."""
        if self._file.isopen:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _checked_blocks(blocks: Sequence[np.ndarray] | None, n_columns: int) -> list[np.ndarray]:
    if blocks is None:
        blocks = [np.arange(n_columns)]
    checked = [np.asarray(b, dtype=np.int64) for b in blocks]
    covered = np.sort(np.concatenate(checked)) if checked else np.zeros(0)
    if not np.array_equal(covered, np.arange(n_columns)):
        raise ValueError("blocks must partition the columns")
    return checked


def write_frame(path: str | Path, key: str, index, columns, values: np.ndarray, **kwargs) -> Path:
    """Write a whole (small) frame in one call.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.h5`` file to write.
    key : str
        Name of the group.
    index, columns : sequence of str
        Row and column names.
    values : numpy.ndarray
        The ``len(index) x len(columns)`` values.
    **kwargs
        Further :class:`FrameWriter` options.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``values`` does not match the names in shape.
    """
    with FrameWriter(path, key, index, columns, **kwargs) as writer:
        for start in range(0, len(index), rows_per_chunk(len(columns))):
            writer.write(values[start : start + rows_per_chunk(len(columns))])
    return Path(path)
