"""Read a pandas fixed-format HDF5 frame in row chunks with h5py.

pandas can only read such a frame whole; :class:`FrameReader` reads it row
chunk by row chunk, so memory stays bounded by the chunk size whatever the file size.

The frame's datasets are read with h5py (blosc through hdf5plugin), never with
PyTables, which unpickles attribute values: no file read here can make mmscel
unpickle anything. A file whose attributes hold pickles beyond plain data is
refused all the same (:mod:`mmscel.data.h5_safety`).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import h5py
import hdf5plugin  # noqa: F401  (registers the blosc filter the competition's files are compressed with)
import numpy as np

from mmscel.data.error_text import one_line, shown
from mmscel.data.h5_format import decode_names, rows_per_chunk
from mmscel.data.h5_safety import refuse_pickles
from mmscel.errors import InputError

T = TypeVar("T")
_REQUIRED_NODES = ("axis0", "axis1", "block0_items", "block0_values")


class FrameReader:
    """Read a pandas fixed-format HDF5 frame in row chunks.

    Handles any number of blocks (the competition's extra day-2 CITE file has
    two) and returns rows in ``axis0`` column order.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.h5`` file.
    key : str, optional
        The frame's group; by default the file's only group.

    Raises
    ------
    InputError
        If the file is missing, not HDF5, truncated or corrupt, holds pickled
        Python objects, or does not hold a pandas fixed-format frame.
    """

    def __init__(self, path: str | Path, key: str | None = None):
        self.path = Path(path)
        self._file = _open_refusing_pickles(self.path)
        try:
            self._read_layout(key)
        except InputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise InputError(self.path, f"unreadable frame layout: {one_line(exc)}") from None

    def _read_layout(self, key: str | None) -> None:
        group = self._frame_group(key)
        names = set(group)
        for required in _REQUIRED_NODES:
            if required not in names:
                problem = f"frame {shown(self.key)} lacks '{required}': not a pandas fixed-format frame"
                raise InputError(self.path, problem)
        self.columns = self._names(group, "axis0")
        self.index = self._names(group, "axis1")
        self.blocks: list[tuple[np.ndarray, h5py.Dataset]] = self._read_blocks(group, names)

    def _frame_group(self, key: str | None) -> h5py.Group:
        groups = [name for name in self._file if isinstance(self._file.get(name, getlink=True), h5py.HardLink)]
        groups = [name for name in groups if isinstance(self._file[name], h5py.Group)]
        if key is None:
            if len(groups) != 1:
                raise InputError(self.path, f"expected one frame group, found {groups or 'none'}")
            key = groups[0]
        elif key not in groups:
            raise InputError(self.path, f"no frame named {shown(key)} (found {shown(groups)})")
        self.key = key
        return self._file[key]

    def _dataset(self, group: h5py.Group, name: str) -> h5py.Dataset:
        """A dataset of the frame, stored in this file (no links elsewhere, no external or virtual storage)."""
        if not isinstance(group.get(name, getlink=True), h5py.HardLink):
            raise InputError(self.path, f"'{name}' of frame {shown(self.key)} is a link, not a dataset of this file")
        node = group[name]
        if not isinstance(node, h5py.Dataset):
            raise InputError(self.path, f"'{name}' of frame {shown(self.key)} is not a dataset")
        if node.is_virtual or node.external:
            raise InputError(self.path, f"'{name}' of frame {shown(self.key)} keeps its values outside this file")
        return node

    def _names(self, group: h5py.Group, name: str) -> np.ndarray:
        values = self._dataset(group, name)[()]
        if not isinstance(values, np.ndarray) or values.ndim != 1:
            raise InputError(self.path, f"'{name}' of frame {shown(self.key)} is not a list of names")
        return decode_names(values)

    def _read_blocks(self, group: h5py.Group, names: set[str]) -> list[tuple[np.ndarray, h5py.Dataset]]:
        """(column positions, values dataset) of each block, checked against axis0 and axis1."""
        position = {name: i for i, name in enumerate(self.columns)}
        if len(position) != len(self.columns):
            raise InputError(self.path, "duplicate column names in axis0")
        blocks = []
        i = 0
        while f"block{i}_items" in names:
            items = self._names(group, f"block{i}_items")
            node = self._dataset(group, f"block{i}_values")
            if node.shape != (len(self.index), len(items)):
                raise InputError(
                    self.path, f"block{i}_values has shape {node.shape}, expected ({len(self.index)}, {len(items)})"
                )
            try:
                positions = np.fromiter((position[n] for n in items), dtype=np.int64, count=len(items))
            except KeyError as exc:
                problem = f"block{i}_items names column {shown(exc.args[0])} that is not in axis0"
                raise InputError(self.path, problem) from None
            blocks.append((positions, node))
            i += 1
        held = sum(len(positions) for positions, _ in blocks)
        if held != len(self.columns):
            raise InputError(self.path, f"blocks hold {held} columns, axis0 names {len(self.columns)}")
        return blocks

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the frame."""
        return (len(self.index), len(self.columns))

    def read_rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` as a dense float32 array in column order.

        Parameters
        ----------
        start, stop : int
            The row range; ``stop`` is clipped to the frame.
        out : numpy.ndarray, optional
            A C-contiguous float32 buffer of at least that many rows, read into
            so that a loop can reuse one buffer instead of a fresh one per chunk.

        Returns
        -------
        numpy.ndarray
            The rows (a view of ``out`` when given).

        Raises
        ------
        InputError
            If the rows cannot be read (truncated or corrupt file).
        """
        n = max(0, min(stop, self.shape[0]) - start)
        target = np.empty((n, self.shape[1]), dtype=np.float32) if out is None else out[:n]
        if n == 0 or target.size == 0:
            return target
        try:
            if self._reads_in_place():
                self.blocks[0][1].read_direct(target, np.s_[start : start + n])
            else:
                for positions, node in self.blocks:
                    if len(positions):
                        target[:, positions] = node[start : start + n]
            return target
        except Exception as exc:
            raise InputError(
                self.path, f"cannot read rows {start}-{start + n} (truncated or corrupt?): {one_line(exc)}"
            ) from None

    def _reads_in_place(self) -> bool:
        """One float32 block in axis0 order: HDF5 can decompress straight into the caller's array."""
        positions, node = self.blocks[0]
        return (
            len(self.blocks) == 1 and node.dtype == np.float32 and np.array_equal(positions, np.arange(self.shape[1]))
        )

    def iter_chunks(self, chunk_rows: int | None = None, prefetch: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Iterate over all rows in order, one chunk at a time.

        Parameters
        ----------
        chunk_rows : int, optional
            Rows per chunk; by default what fits in the default chunk size.
        prefetch : bool
            Read the next chunk in a background thread while the caller works
            on the current one (HDF5 reads release the GIL), at the cost of one
            more chunk in memory.

        Yields
        ------
        tuple of (int, numpy.ndarray)
            The first row of the chunk and its dense float32 rows.

        Raises
        ------
        InputError
            If a chunk cannot be read.
        """
        step = chunk_rows or rows_per_chunk(self.shape[1])
        if not prefetch:
            for start in range(0, self.shape[0], step):
                yield start, self.read_rows(start, start + step)
            return
        yield from self.map_chunks(np.copy, step, workers=1)

    def map_chunks(
        self, func: Callable[[np.ndarray], T], chunk_rows: int | None = None, workers: int = 2
    ) -> Iterator[tuple[int, T]]:
        """Apply ``func`` to every row chunk, in order, in ``workers`` threads.

        Each worker reads its chunk (reads are serialised: HDF5 is not
        thread-safe) into a buffer from a small pool and then runs ``func`` on
        it while the next worker reads; numpy, blosc and hashlib release the
        GIL, so reading and processing overlap on several cores.

        Parameters
        ----------
        func : callable
            Called with each dense float32 chunk. It must not keep a reference
            to its argument: the buffer is reused as soon as it returns.
        chunk_rows : int, optional
            Rows per chunk; by default what fits in the default chunk size.
        workers : int
            Threads reading and running ``func``.

        Yields
        ------
        tuple of (int, object)
            The first row of each chunk and ``func`` of the chunk.

        Raises
        ------
        InputError
            If a chunk cannot be read.
        """
        step = chunk_rows or rows_per_chunk(self.shape[1])
        starts = list(range(0, self.shape[0], step))
        window = max(1, workers) + 1
        buffers: queue.Queue = queue.Queue()
        for _ in range(min(window, len(starts))):
            buffers.put(np.empty((min(step, self.shape[0]), self.shape[1]), dtype=np.float32))
        read_lock = threading.Lock()

        def job(start: int) -> T:
            buffer = buffers.get()
            try:
                with read_lock:
                    chunk = self.read_rows(start, start + step, out=buffer)
                return func(chunk)
            finally:
                buffers.put(buffer)

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmscel-read") as pool:
            yield from _results_in_order(pool, job, starts, window)

    def close(self) -> None:
        """Close the underlying file."""
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            self._file.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_refusing_pickles(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        if not h5py.is_hdf5(str(path)):
            raise InputError(path, "not an HDF5 file")
        refuse_pickles(path)
        return h5py.File(path, "r")
    except InputError:
        raise
    except Exception as exc:  # HDF5 reports truncation and corruption in many ways
        raise InputError(path, f"cannot open as HDF5 (truncated or corrupt?): {one_line(exc)}") from None


def _results_in_order(
    pool: ThreadPoolExecutor, job: Callable[[int], T], starts: Iterable[int], window: int
) -> Iterator[tuple[int, T]]:
    """Submit ``job`` for each start, at most ``window`` ahead, and yield the results in order."""
    pending: deque[tuple[int, Future]] = deque()
    try:
        for start in starts:
            pending.append((start, pool.submit(job, start)))
            if len(pending) >= window:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
    finally:
        for _, future in pending:
            future.cancel()
