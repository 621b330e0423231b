"""Chunked reading and writing of pandas fixed-format HDF5 frames.

The layout is described in :mod:`mmscel.data.h5_format`; the reader lives in
:mod:`mmscel.data.h5_reader`, the writer in :mod:`mmscel.data.h5_writer` and
the check that refuses pickled objects in :mod:`mmscel.data.h5_safety`.
"""

from mmscel.data.h5_format import DEFAULT_CHUNK_BYTES, rows_per_chunk
from mmscel.data.h5_reader import FrameReader
from mmscel.data.h5_safety import refuse_pickles
from mmscel.data.h5_writer import FrameWriter, write_frame

__all__ = ["DEFAULT_CHUNK_BYTES", "FrameReader", "FrameWriter", "refuse_pickles", "rows_per_chunk", "write_frame"]
