"""The simulator's HDF5 frames: written beside their raw counts, all kept or all dropped."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from mmscel.data import layout
from mmscel.data.h5_writer import FrameWriter


def frame_writer(folder: Path, stem: str, index: Sequence[str], columns: Sequence[str], **kwargs) -> FrameWriter:
    """A writer of ``<folder>/<stem>.h5`` whose frame is named ``stem``, as Kaggle's files are.

    Parameters
    ----------
    folder : pathlib.Path
        The competition folder or its ``truth/``.
    stem : str
        File stem and frame name.
    index, columns : sequence of str
        Row and column names.
    **kwargs
        Further :class:`~mmscel.data.h5_writer.FrameWriter` options.

    Returns
    -------
    FrameWriter
        An open writer.
    """
    return FrameWriter(folder / f"{stem}.h5", stem, index, columns, **kwargs)


def raw_writer(folder: Path, stem: str, index: Sequence[str], columns: Sequence[str]) -> FrameWriter:
    """A writer of the raw counts beside the matrix ``stem`` (``<stem>_raw.h5``).

    Parameters
    ----------
    folder : pathlib.Path
        The competition folder.
    stem : str
        Stem of the matrix the counts belong to.
    index, columns : sequence of str
        Row and column names.

    Returns
    -------
    FrameWriter
        An open writer.
    """
    return frame_writer(folder, stem + layout.RAW_SUFFIX, index, columns)


@contextlib.contextmanager
def all_or_nothing(writers: Iterable[FrameWriter]) -> Iterator[None]:
    """Close every writer when the block succeeds, abort every one when it raises.

    Parameters
    ----------
    writers : iterable of FrameWriter
        Open writers, closed or aborted in this order.

    Yields
    ------
    None
        Control to the block that writes the rows.
    """
    ok = False
    try:
        yield
        ok = True
    finally:
        for writer in writers:
            writer.close() if ok else writer.abort()
