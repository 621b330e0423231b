"""The out-of-fold store: fingerprints, manifests and per-fold checkpoints under ``oof/``.

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

LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "lightgbm", "xgboost", "catboost", "torch", "optuna")


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


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (for its manifest)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
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


def oof_path(oof_root: str | Path, stored: str) -> Path:
    """A file named in a manifest, relative to the oof root (older manifests: relative to the working folder)."""
    inside = Path(oof_root) / stored
    if inside.exists() or not Path(stored).exists():
        return inside
    return Path(stored)


def read_manifest(path: Path) -> dict | None:
    """A manifest's content, or None when there is none."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(path, "corrupt manifest (not JSON)") from None


def write_manifest(path: Path, payload: dict) -> Path:
    """Write a manifest atomically."""
    return write_json(path, payload)


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    """Write a parquet file atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


class FoldCheckpoint:
    """Per-fold results of a run: predictions, model files and a completion marker.

    A fold counts as done only once ``done.json`` exists; it is written last,
    so a run killed mid-fold simply redoes that fold.
    """

    def __init__(self, run_dir: Path, fold: str):
        self.folder = Path(run_dir) / "folds" / f"fold_{fold}"

    @property
    def done(self) -> bool:
        """Whether the fold finished: its marker exists and reads (a damaged one means: redo the fold)."""
        return self._info() is not None

    def model_dir(self) -> Path:
        """Folder of the fold's native model files."""
        return self.folder / "model"

    def save(self, predictions: dict[str, np.ndarray], info: dict) -> None:
        """Store this fold's prediction arrays and facts, then mark it done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, array in predictions.items():
            save_array(self.folder / f"{name}.npy", array)
        write_json(self.folder / "done.json", info)

    def load(self, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
        """The arrays and facts stored by :meth:`save`."""
        info = self._info()
        if info is None:
            raise InputError(self.folder / "done.json", "missing or damaged; run again to redo the fold")
        return {name: load_array(self.folder / f"{name}.npy") for name in names}, info

    def _info(self) -> dict | None:
        try:
            info = json.loads((self.folder / "done.json").read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None
