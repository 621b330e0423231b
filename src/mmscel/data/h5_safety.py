"""Refuse HDF5 files that carry pickled Python objects.

mmscel reads HDF5 frames with h5py (:mod:`mmscel.data.h5_reader`), which never
unpickles anything. PyTables, which pandas uses, unpickles attribute values
that look like pickles (byte strings ending in ``.``) and the rows of
``ObjectAtom`` arrays, so such a file is built to run code in the next tool
that opens it: it is refused with one line rather than read.

Every attribute is read as raw bytes through h5py's low-level API (the high-level
reader cuts a fixed-length string at its first NUL) and scanned as a pickle
opcode stream with :mod:`pickletools`, which parses without executing: a value
whose opcodes would import, call or build an object is refused. Plain-data
pickles (pandas stores an unnamed axis's ``name = None`` as one) pass.
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmscel.data.error_text import shown
from mmscel.errors import InputError

_MAX_ATTRIBUTE_BYTES = 2**24
# Opcodes through which an unpickler looks up a global, calls it or hands data to an object.
_CODE_OPCODES = frozenset(
    {
        "GLOBAL",
        "STACK_GLOBAL",
        "INST",
        "OBJ",
        "REDUCE",
        "BUILD",
        "NEWOBJ",
        "NEWOBJ_EX",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
    }
)


def refuse_pickles(path: Path) -> None:
    """Raise if any attribute of this HDF5 file holds a pickle that is more than plain data.

    Every object reachable through hard links (the root, groups, datasets and
    named datatypes) is inspected; ``ObjectAtom`` arrays (a competition frame
    has none) are refused too.

    Parameters
    ----------
    path : pathlib.Path
        An HDF5 file.

    Raises
    ------
    InputError
        If an attribute holds a pickle that imports, calls or builds an object,
        a node is an ``ObjectAtom`` array, or an attribute has a type a pandas
        frame never stores (compound, array, reference, opaque, ...).
    """
    import h5py

    with h5py.File(path, "r") as handle:
        check_attributes(path, "/", handle.id)
        handle.visititems(lambda name, obj: check_attributes(path, f"/{name}", obj.id))


def check_attributes(path: Path, node: str, object_id) -> None:
    """Refuse the file if an attribute of one HDF5 object holds a pickle beyond plain data.

    Parameters
    ----------
    path : pathlib.Path
        The file, named in the error.
    node : str
        The object's path in the file, named in the error.
    object_id : h5py.h5o.ObjectID
        The object's low-level identifier.

    Raises
    ------
    InputError
        As :func:`refuse_pickles`.
    """
    import h5py

    for index in range(h5py.h5a.get_num_attrs(object_id)):
        attribute = h5py.h5a.open(object_id, index=index)
        key = attribute.name.decode("utf-8", "replace")
        for value in _raw_values(path, node, key, attribute):
            if key == "PSEUDOATOM" and value.rstrip(b"\0") == b"object":
                raise InputError(
                    path, f"{node} stores pickled Python objects (an ObjectAtom array), which mmscel never loads"
                )
            if runs_code(value):
                raise InputError(
                    path, f"attribute {shown(key)} of {node} holds a pickled Python object, which mmscel never loads"
                )


def _raw_values(path: Path, node: str, key: str, attribute) -> Iterator[bytes]:
    """The full bytes of each string in the attribute; nothing for numbers and empty attributes."""
    import h5py

    if attribute.get_space().get_simple_extent_type() == h5py.h5s.NULL:
        return
    file_type = attribute.get_type()
    kind = file_type.get_class()
    if kind in (h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.BITFIELD, h5py.h5t.ENUM):
        return
    if kind != h5py.h5t.STRING:
        problem = f"attribute {shown(key)} of {node} has an HDF5 type a pandas frame never stores; refused"
        raise InputError(path, problem)
    if file_type.is_variable_str():
        utf8 = file_type.get_cset() == h5py.h5t.CSET_UTF8
        dtype = h5py.string_dtype("utf-8" if utf8 else "ascii")
        memory_type = h5py.h5t.py_create(dtype)
    else:
        dtype, memory_type = np.dtype(f"S{file_type.get_size()}"), file_type
    if int(np.prod(attribute.shape)) * max(dtype.itemsize, 1) > _MAX_ATTRIBUTE_BYTES:
        raise InputError(path, f"attribute {shown(key)} of {node} is larger than a pandas frame ever stores; refused")
    buffer = np.empty(attribute.shape, dtype=dtype)
    try:
        attribute.read(buffer, mtype=memory_type)
    except Exception:  # unreadable here: PyTables' own reader is not to be trusted with it either
        problem = f"attribute {shown(key)} of {node} cannot be inspected; refusing to read the file"
        raise InputError(path, problem) from None
    for value in buffer.reshape(-1):
        yield value if isinstance(value, bytes) else bytes(value)


def runs_code(value: bytes) -> bool:
    """Whether unpickling ``value``, or any of its prefixes that ends before a NUL, could run code.

    The value is parsed as a pickle opcode stream without executing anything.
    An unpickler executes opcodes in order, so any opcode it would run on the
    value or on a prefix of it appears in this parse before the first STOP or
    parse error; a value no reader could take for a pickle (none of its
    candidates ends in ``.``) is never scanned.

    Parameters
    ----------
    value : bytes
        The raw bytes of an attribute value.

    Returns
    -------
    bool
        True when an opcode that imports, calls or builds an object is met.
    """
    if not (value.rstrip(b"\0").endswith(b".") or b".\0" in value):
        return False
    try:
        for opcode, _, _ in pickletools.genops(value):
            if opcode.name in _CODE_OPCODES:
                return True
            if opcode.name == "STOP":
                return False
    except Exception:  # not a pickle past this point: an unpickler stops here too
        return False
    return False
