"""The prepared cache's files: where each lives, the manifest, and the sources it was built from.

For each matrix the cache holds ``<stem>_values.sparse.npz`` (scipy CSR,
float32) and ``<stem>_idxcol.npz`` (arrays ``index`` and ``columns``); a
``manifest.json`` records each source's size, time and checksum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmscel.data import layout
from mmscel.data.error_text import one_line
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, file_checksum

MANIFEST = "manifest.json"
CACHE_FORMAT = 2  # a manifest of another format is ignored, so that cache is rebuilt whole


@dataclass
class PrepareReport:
    """What ``prepare`` did, for the CLI to print.

    Attributes
    ----------
    cache : pathlib.Path
        The cache folder.
    built, reused : list of str
        Names of the entries converted and of those found up to date.
    shapes, nnz : dict
        Shape and non-zero count of each matrix, by stem.
    cite_duplicates : int or None
        CITEseq test rows identical to a train row, when the CITEseq test inputs exist.
    seconds : float
        Wall time of the run.
    """

    cache: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    nnz: dict[str, int] = field(default_factory=dict)
    cite_duplicates: int | None = None
    seconds: float = 0.0


def values_path(cache: Path, stem: str) -> Path:
    """Path of the CSR values of ``stem`` in the cache.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder, or a folder of sources already in the cache's format.
    stem : str
        File stem of the matrix.

    Returns
    -------
    pathlib.Path
        ``<cache>/<stem>_values.sparse.npz``.
    """
    return Path(cache) / f"{stem}_values.sparse.npz"


def idxcol_path(cache: Path, stem: str) -> Path:
    """Path of the row and column names of ``stem`` in the cache.

    Parameters
    ----------
    cache : pathlib.Path
        A folder of ``.npz`` matrices (the cache, or sources in its format).
    stem : str
        The matrix the names belong to.

    Returns
    -------
    pathlib.Path
        ``<cache>/<stem>_idxcol.npz``.
    """
    return Path(cache) / f"{stem}_idxcol.npz"


def default_cache(data_dir: Path) -> Path:
    """The cache folder used when ``--cache`` is not given.

    Parameters
    ----------
    data_dir : pathlib.Path
        The competition folder; the cache goes inside it.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/.cache``.
    """
    return Path(data_dir) / ".cache"


def read_manifest(cache: Path) -> dict:
    """The cache's manifest, or an empty one when it is missing, unreadable or of another format.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder, which may hold ``manifest.json``.

    Returns
    -------
    dict
        At least ``{"entries": {}}``.
    """
    path = cache / MANIFEST
    if not path.exists():
        return {"entries": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"entries": {}}  # an unreadable manifest only means everything is rebuilt
    if manifest.get("format") != CACHE_FORMAT:
        return {"entries": {}}
    manifest.setdefault("entries", {})
    return manifest


def source_record(path: Path) -> dict:
    """What the manifest remembers of a source file.

    Parameters
    ----------
    path : pathlib.Path
        The source file.

    Returns
    -------
    dict
        Its name, size, modification time (ns) and SHA-256.
    """
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_checksum(path)}


def source_is_current(path: Path, record: dict | None) -> bool:
    """Whether ``path`` is the file ``record`` describes (size and mtime, else checksum).

    Parameters
    ----------
    path : pathlib.Path
        The source file.
    record : dict or None
        What :func:`source_record` returned when the entry was built.

    Returns
    -------
    bool
        False when there is no record or no file.
    """
    if record is None or not path.exists():
        return False
    stat = path.stat()
    if stat.st_size != record.get("size"):
        return False
    return stat.st_mtime_ns == record.get("mtime_ns") or file_checksum(path) == record.get("sha256")


def matrix_sources(data_dir: Path) -> dict[str, Path]:
    """The matrices present in ``data_dir``, each as HDF5 or, failing that, in the cache's sparse format.

    Parameters
    ----------
    data_dir : pathlib.Path
        The competition folder.

    Returns
    -------
    dict of str to pathlib.Path
        Stem -> source file (``.h5`` or ``_values.sparse.npz``).

    Raises
    ------
    InputError
        If a task present lacks one of its three matrices, or no task is present.
    """
    found: dict[str, Path] = {}
    stems = list(layout.H5_STEMS) + [layout.CITE_DAY2_EXTRA]
    stems += [s + layout.RAW_SUFFIX for s in layout.H5_STEMS]
    for stem in stems:
        h5 = layout.h5_path(data_dir, stem)
        if h5.exists():
            found[stem] = h5
        elif values_path(data_dir, stem).exists():
            found[stem] = values_path(data_dir, stem)
    for task in (layout.CITE, layout.MULTI):
        present = [s for s in task.stems() if s in found]
        if present and len(present) < 3:
            missing = next(s for s in task.stems() if s not in found)
            raise InputError(
                data_dir / f"{missing}.h5",
                f"file not found (the {task.name} task needs all of {', '.join(task.stems())})",
            )
    if not any(s in found for s in layout.H5_STEMS):
        raise InputError(
            data_dir, "no competition files found (expected train_cite_inputs.h5, train_multi_inputs.h5, ...)"
        )
    return found


def load_idxcol(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row and column names of a cached matrix.

    Parameters
    ----------
    path : pathlib.Path
        An ``_idxcol.npz`` file.

    Returns
    -------
    tuple of numpy.ndarray
        ``index`` (row names) and ``columns`` (column names), as str arrays.

    Raises
    ------
    InputError
        If the file is unreadable, lacks either array, or stores pickled objects.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["index"], archive["columns"]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(
                path,
                "stores Python objects (pickle), which mmscel never loads; save index and columns as string arrays",
            ) from None
        raise InputError(path, f"unreadable: {one_line(exc, mark_cut=False)}") from None
    except Exception as exc:
        raise InputError(path, f"unreadable or missing 'index'/'columns': {one_line(exc, mark_cut=False)}") from None


def read_idxcol(cache: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column names of the cached matrix ``stem``.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder holding ``<stem>_idxcol.npz``.
    stem : str
        A matrix prepared into ``cache``.

    Returns
    -------
    tuple of numpy.ndarray
        Row names (cell ids) and column names (features).

    Raises
    ------
    InputError
        As :func:`load_idxcol`.
    """
    return load_idxcol(idxcol_path(cache, stem))


def write_idxcol(cache: Path, stem: str, index: np.ndarray, columns: np.ndarray) -> None:
    """Store the row and column names of ``stem`` atomically, as str arrays.

    Parameters
    ----------
    cache : pathlib.Path
        The cache folder.
    stem : str
        The matrix the names belong to.
    index, columns : numpy.ndarray
        Row names (cell ids) and column names (features).
    """
    with atomic_path(idxcol_path(cache, stem)) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, index=np.asarray(index, dtype=str), columns=np.asarray(columns, dtype=str))
