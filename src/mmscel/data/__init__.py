"""The competition's data: layout and names, chunked HDF5 I/O, sparse cache, imports, synthesis."""

from mmscel.data.load import Split, check_cache, load, stacked_inputs

__all__ = ["Split", "check_cache", "load", "stacked_inputs"]
