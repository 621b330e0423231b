"""The prepared cache's files: where each lives, the manifest, and the sources it was built from.

For each matrix the cache holds ``<stem>_values.sparse.npz`` (scipy CSR,
float32) and ``<stem>_idxcol.npz`` (arrays ``index`` and ``columns``); a
``manifest.json`` records each source's size, time and checksums, and each
output's size and checksum (:mod:`mmscel.data.cache_integrity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmscel.data import layout
from mmscel.data.cache_integrity import announce_rebuild
from mmscel.data.cache_integrity import source_is_current as source_is_current  # re-exported: it lived here
from mmscel.data.cache_integrity import source_record as source_record  # re-exported: it lived here
from mmscel.data.error_text import one_line
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path

MANIFEST = "manifest.json"
CACHE_FORMAT = 3  # 3 added the outputs' checksums; prepare rebuilds a cache of another format whole, load refuses it


@dataclass
class PrepareReport:
    """What ``prepare`` did, for the CLI to print.

    Attributes
    ----------
    cache : pathlib.Path
        The cache folder.
    built, reused : list of str
        Names of the entries converted and of those found up to date.
    rebuilt : dict of str to str
        Entries in ``built`` that the cache held but that were missing or damaged there, with what was wrong.
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
    rebuilt: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    nnz: dict[str, int] = field(default_factory=dict)
    cite_duplicates: int | None = None
    seconds: float = 0.0

    def status(self, name: str) -> str:
        """What happened to one entry, for a status column.

        Parameters
        ----------
        name : str
            A matrix stem or table name.

        Returns
        -------
        str
            'reused', 'built', or 'rebuilt: missing' / 'rebuilt: damaged' when the cache's copy was.
        """
        if name in self.rebuilt:
            return f"rebuilt: {self.rebuilt[name].split(':', 1)[0]}"
        return "built" if name in self.built else "reused"

    def note_rebuild(self, name: str, problem: tuple[str, str] | None) -> None:
        """Record (and, for a missing or damaged output, announce on stderr) why ``name`` is rebuilt.

        Parameters
        ----------
        name : str
            The entry.
        problem : tuple of (str, str) or None
            Its kind and detail, from :func:`~mmscel.data.cache_integrity.entry_problem`.
        """
        if problem is not None and problem[0] in ("missing", "damaged"):
            self.rebuilt[name] = f"{problem[0]}: {problem[1]}"
            announce_rebuild(name, problem)


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
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"entries": {}}  # an unreadable manifest only means everything is rebuilt
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        return {"entries": {}}
    if not isinstance(manifest.setdefault("entries", {}), dict):
        manifest["entries"] = {}
    return manifest


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
