"""Where an AnnData import reads from: ``.h5ad`` / ``.h5mu`` files, or AnnData / MuData objects in memory.

An object in memory is read as it is, never modified; messages and
``truth.json`` name it by its role and size, since it has no path.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

from mmscel.data.error_text import one_line
from mmscel.errors import InputError


@dataclasses.dataclass(frozen=True)
class Sources:
    """What an import reads: files, or objects in memory.

    Attributes
    ----------
    inputs, targets : str or pathlib.Path or anndata.AnnData or None
        Paired ``.h5ad`` files (or AnnData objects) holding the same cells.
    mudata : str or pathlib.Path or mudata.MuData or None
        One ``.h5mu`` file (or MuData object) instead of ``inputs`` + ``targets``.
    input_mod, target_mod : str or None
        Modalities of ``mudata`` (defaults per task in ``anndata_read.DEFAULT_MODS``).
    test_inputs, test_targets : str or pathlib.Path or anndata.AnnData or None
        Separate paired ``.h5ad`` test files (or AnnData objects).
    targets_obsm : str or None
        Read the targets from this ``obsm`` entry of the inputs (and of the test inputs) instead of
        ``targets`` (scvi-tools keeps CITE-seq proteins so, e.g. ``protein_expression``).
    """

    inputs: Any = None
    targets: Any = None
    mudata: Any = None
    input_mod: str | None = None
    target_mod: str | None = None
    test_inputs: Any = None
    test_targets: Any = None
    targets_obsm: str | None = None


def is_path(source: Any) -> bool:
    """Whether ``source`` names a file (rather than being an object in memory)."""
    return isinstance(source, str | os.PathLike)


def describe(source: Any, role: str) -> str:
    """How messages and ``truth.json`` name a source: its path, or its role and size when in memory.

    Parameters
    ----------
    source
        A path, or an AnnData or MuData object.
    role
        The argument it was given as (``inputs``, ``mudata``, ...).

    Returns
    -------
    str
        ``data/x.h5ad``, or ``inputs (AnnData in memory, 600 cells x 2000 features)``.
    """
    if is_path(source):
        return str(source)
    shape = getattr(source, "shape", None)
    size = f", {shape[0]} cells x {shape[1]} features" if shape is not None and len(shape) == 2 else ""
    return f"{role} ({type(source).__name__} in memory{size})"


def open_anndata(source: Any, role: str) -> Any:
    """An AnnData: read from an ``.h5ad`` file, or ``source`` itself when it is one.

    Parameters
    ----------
    source
        A path or an :class:`anndata.AnnData`.
    role
        The argument it was given as, for the message.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    InputError
        A missing or unreadable file, or an object that is not an AnnData.
    """
    import anndata

    if is_path(source):
        return _read_file(source, anndata.read_h5ad, "AnnData .h5ad")
    return _checked(source, anndata.AnnData, role, "an .h5ad path or an AnnData")


def open_mudata(source: Any) -> Any:
    """A MuData: read from an ``.h5mu`` file, or ``source`` itself when it is one.

    Parameters
    ----------
    source
        A path or a :class:`mudata.MuData`.

    Returns
    -------
    mudata.MuData

    Raises
    ------
    InputError
        A missing or unreadable file, or an object that is not a MuData.
    """
    import mudata

    if is_path(source):
        return _read_file(source, mudata.read_h5mu, "MuData .h5mu")
    return _checked(source, mudata.MuData, "mudata", "an .h5mu path or a MuData")


def _checked(source: Any, kind: type, role: str, wanted: str) -> Any:
    if not isinstance(source, kind):
        raise InputError(role, f"expected {wanted}, got {type(source).__name__}")
    return source


def _read_file(path, reader, kind: str) -> Any:
    """Read with ``reader``; a missing or corrupt file becomes a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reader(path)
    except Exception as exc:  # h5py, anndata and mudata report corruption in many ways
        raise InputError(path, f"cannot read as {kind} (corrupt or another format?): {one_line(exc)}") from None
