"""The pandas fixed-format HDF5 frame: the names it stores and the row chunks mmscel reads and writes.

The competition ships each matrix as ``DataFrame.to_hdf(..., format="fixed")``:
one group named after the file stem holding ``axis0`` (column names),
``axis1`` (row index, the cell ids) and one or more ``block{i}_items`` /
``block{i}_values`` pairs, the values stored row-major (``transposed``) and
blosc-compressed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_CHUNK_BYTES = 128 * 2**20
FLOAT32_BYTES = 4


def rows_per_chunk(n_columns: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Number of float32 rows of ``n_columns`` that fit in ``chunk_bytes``.

    Parameters
    ----------
    n_columns : int
        Width of a row.
    chunk_bytes : int
        Memory budget of one chunk.

    Returns
    -------
    int
        At least 1.
    """
    return max(1, chunk_bytes // (FLOAT32_BYTES * max(1, n_columns)))


def encode_names(names: Sequence[str]) -> np.ndarray:
    """Names as the UTF-8 byte strings pandas stores.

    Parameters
    ----------
    names : sequence of str
        Row or column names.

    Returns
    -------
    numpy.ndarray
        Fixed-width bytes (``S``); an empty input gives an empty ``S1`` array.
    """
    array = np.asarray([str(name) for name in names], dtype=object).astype("U")
    return np.char.encode(array, "utf-8") if array.size else np.zeros(0, dtype="S1")


def decode_names(array: np.ndarray) -> np.ndarray:
    """Stored names as an object array of str.

    Parameters
    ----------
    array : numpy.ndarray
        UTF-8 bytes (``S``) or any array convertible to str.

    Returns
    -------
    numpy.ndarray
        The names, dtype object.
    """
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8").astype(object)
    return array.astype(str).astype(object)
