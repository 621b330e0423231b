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
from mmscel.data.load import cache_dir_for, check_cache
from mmscel.errors import InputError
from mmscel.fsutil import atomic_path, write_json

BASE_LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "optuna")


def digest(payload: Any) -> str:
    """Short SHA-256 of a JSON-serialisable payload (keys sorted)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    """Short SHA-256 of the bytes, dtypes and shapes of arrays."""
    hasher = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.tobytes() if array.dtype != object else "\x1f".join(map(str, array.ravel())).encode())
    return hasher.hexdigest()[:16]


def data_fingerprint(task: str, data_dir: str | Path, cache_dir: str | Path | None = None) -> str:
    """Fingerprint of one task's data: checksums of its three matrices and the metadata."""
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
    """Write ``.npy`` atomically, never as a pickle."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return path


def load_array(path: Path) -> np.ndarray:
    """Read a ``.npy`` written by :func:`save_array` (pickles refused)."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except ValueError as exc:
        raise InputError(path, f"unreadable array: {exc}") from None


def read_manifest(path: Path) -> dict | None:
    """A manifest's content, or None when there is none."""
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
    """Write a manifest atomically."""
    return write_json(path, payload)


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    """Write a parquet file atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path
