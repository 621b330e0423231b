"""Refuse HDF5 files from which PyTables would unpickle Python objects.

PyTables unpickles attribute values that look like pickles (byte strings
ending in ``.``) and the rows of ``ObjectAtom`` arrays, so a crafted file could
run code when read. The file is inspected with h5py first, which never
unpickles.
"""

from __future__ import annotations

import io
import pickle  # only to refuse pickles: _PlainDataUnpickler never looks up a class
from pathlib import Path

import numpy as np

from mmscel.errors import InputError


def refuse_pickles(path: Path) -> None:
    """Raise if PyTables would load a Python object from this HDF5 file.

    pandas itself pickles plain values into attributes (an unnamed axis stores
    ``name = None`` as a pickle): pickles that only build plain data (no class
    or function lookups) are let through; anything else is refused, as are
    ``ObjectAtom`` arrays (a competition frame has none).

    Parameters
    ----------
    path : pathlib.Path
        An HDF5 file.

    Raises
    ------
    InputError
        If an attribute holds a pickle that needs more than plain data, a node
        is an ``ObjectAtom`` array, or an attribute has a type h5py cannot read.
    """
    import h5py

    def check(name: str, obj) -> None:
        for key in obj.attrs:
            _check_attribute(path, name, key, _read_attribute(path, name, obj, key))

    with h5py.File(path, "r") as handle:
        check("", handle)
        handle.visititems(check)


def _read_attribute(path: Path, name: str, obj, key: str):
    try:
        return obj.attrs[key]
    except Exception:  # unreadable here: PyTables' own reader is not to be trusted with it either
        raise InputError(
            path, f"attribute {key!r} of /{name} has a type mmscel cannot inspect; refusing to read the file"
        ) from None


def _check_attribute(path: Path, name: str, key: str, value) -> None:
    if key == "PSEUDOATOM" and _as_bytes(value) == b"object":
        raise InputError(path, f"/{name} stores pickled Python objects (an ObjectAtom array), which mmscel never loads")
    if _unsafe_pickle(_as_bytes(value)):
        raise InputError(path, f"attribute {key!r} of /{name} holds a pickled Python object, which mmscel never loads")


class _Refused(pickle.UnpicklingError):
    """A pickle asked for more than plain data."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class, function or persistent-id lookup is refused."""

    def find_class(self, module: str, name: str):
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _Refused("persistent id")


def _as_bytes(value) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return bytes(value) if isinstance(value, bytes | np.bytes_) else None


def _unsafe_pickle(value: bytes | None) -> bool:
    """True for a byte string PyTables would unpickle (its own test) that needs more than plain data."""
    if value is None or not value.endswith(b".") or value in (b"0", b"0."):
        return False
    try:
        _PlainDataUnpickler(io.BytesIO(value)).load()
    except _Refused:
        return True
    except Exception:  # not a pickle at all: PyTables keeps such a value as it is
        return False
    return False
