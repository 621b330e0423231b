"""The store's file formats and fingerprints: ``.npy`` without pickles, JSON manifests, parquet, digests.

Every artifact under ``oof/`` carries a manifest with the fingerprints of the
data, config and folds it came from, so that nothing built from different
inputs is ever combined silently.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmscel.data import layout
from mmscel.data.cache_check import cache_dir_for, check_cache
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, write_json

BASE_LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "optuna")


def digest(payload: Any) -> str:
    """Short SHA-256 of a JSON-serialisable payload (keys sorted).

    Parameters
    ----------
    payload
        JSON data; other objects enter as their ``str``.

    Returns
    -------
    str
        The first 16 hex digits of the hash.
    """
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    """Short SHA-256 of the bytes, dtypes and shapes of arrays.

    Parameters
    ----------
    *arrays
        The arrays, hashed in order; object arrays (cell ids) enter as their elements' ``str``.

    Returns
    -------
    str
        16 hex digits.
    """
    hasher = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.tobytes() if array.dtype != object else "\x1f".join(map(str, array.ravel())).encode())
    return hasher.hexdigest()[:16]


def data_fingerprint(task: str, data_dir: str | Path, cache_dir: str | Path | None = None) -> str:
    """Fingerprint of one task's data: checksums of its three matrices and the metadata.

    Parameters
    ----------
    task
        ``"cite"`` or ``"multi"``.
    data_dir, cache_dir
        The prepared competition folder and its cache (default: ``<data_dir>/.cache``).

    Returns
    -------
    str
        A :func:`digest` of the source files' SHA-256 sums recorded in the cache manifest.

    Raises
    ------
    InputError
        When the cache is missing, stale or corrupt, or the dataset lacks the task.
    ValueError
        When ``task`` is unknown.
    """
    manifest = check_cache(data_dir, cache_dir)
    spec = layout.task(task)
    entries = manifest["entries"]
    missing = [stem for stem in spec.stems() if stem not in entries]
    if missing:
        raise InputError(
            cache_dir_for(data_dir, cache_dir), f"the {task} task is not in this dataset ({missing[0]} missing)"
        )
    return digest({stem: entries[stem]["source"]["sha256"] for stem in (*spec.stems(), "metadata")})


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the libraries a run depends on (for its manifest).

    Parameters
    ----------
    extra
        Distribution names beyond the base stack (a learner's own library).

    Returns
    -------
    dict
        ``python`` and each library's version, ``"absent"`` when not installed.
    """
    versions = {"python": platform.python_version()}
    for name in dict.fromkeys((*BASE_LIBRARIES, *extra)):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def save_array(path: Path, array: np.ndarray) -> Path:
    """Write ``.npy`` atomically, never as a pickle.

    Parameters
    ----------
    path
        The ``.npy`` file; its folder is created when missing.
    array
        A numeric or string array.

    Returns
    -------
    Path
        ``path``, once the array is in place.

    Raises
    ------
    ValueError
        For an object array, which only a pickle could hold.
    """
    with atomic_path(path, durable=True) as tmp:  # checkpoints and runs: written once, relied on after
        with tmp.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return path


def load_array(path: Path) -> np.ndarray:
    """Read a ``.npy`` written by :func:`save_array` (pickles refused).

    Parameters
    ----------
    path
        The file to load.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InputError
        When the file is missing, or is not an array NumPy reads without pickles.
    """
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except ValueError as exc:
        raise InputError(path, f"unreadable array: {exc}") from None


def read_manifest(path: Path) -> dict | None:
    """A manifest's content, or None when there is none.

    Parameters
    ----------
    path
        The JSON file.

    Returns
    -------
    dict or None
        The JSON object; None when ``path`` does not exist.

    Raises
    ------
    InputError
        When the file is not UTF-8 JSON or holds something other than an object.
    """
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "corrupt manifest (not JSON)") from None
    if not isinstance(content, dict):
        raise InputError(path, f"corrupt manifest (a JSON {type(content).__name__}, expected an object)")
    return content


def write_manifest(path: Path, payload: dict) -> Path:
    """Write a manifest atomically, synced to disk (a manifest marks work as done).

    Parameters
    ----------
    path
        Where the manifest goes.
    payload
        Its content; NumPy values and paths are converted.

    Returns
    -------
    Path
        The manifest's path, as given.

    Raises
    ------
    TypeError
        When the payload holds a value JSON cannot represent (an existing manifest stays as it is).
    """
    return write_json(path, payload)


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    """Write a parquet file atomically, without the frame's index.

    Parameters
    ----------
    path
        The target file.
    frame
        The table to store.

    Returns
    -------
    Path
        The same ``path``.
    """
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path
