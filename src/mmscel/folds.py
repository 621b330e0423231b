"""Shared fold assignments: one file per task and scheme, reused by every run and by level-2.

The schemes live in :mod:`mmscel.fold_schemes`. When the training cells cannot
be split by the scheme a config names (``donor`` on data of one donor), and
always for ``auto``, the fold file keeps the name of the scheme asked for, its
manifest records the scheme applied and why (``applied``), and one line is
logged: a warning for a fallback, information for the choice of ``auto``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmscel.errors import InputError
from mmscel.fold_schemes import FOLD_SCHEMES, FoldScheme, choose_scheme
from mmscel.fsutil import read_parquet_frame
from mmscel.store import RunStore, array_digest, read_manifest, write_manifest, write_parquet

__all__ = ["FOLD_SCHEMES", "FoldScheme", "Folds", "choose_scheme", "load_or_create", "read_fold_labels"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Folds:
    """A fold assignment of the training cells (fold -1: never validated)."""

    task: str
    scheme: str
    cell_ids: np.ndarray
    fold: np.ndarray
    fingerprint: str
    applied: str | None = None  # the scheme applied instead of ``scheme`` (a fallback, or the choice of auto)

    @property
    def fold_ids(self) -> list[int]:
        """The fold numbers that have validation cells (-1 excluded)."""
        return sorted(int(f) for f in np.unique(self.fold) if f >= 0)

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the cells one fold trains on and validates on.

        Parameters
        ----------
        fold
            A fold number; cells of fold -1 always land on the training side.

        Returns
        -------
        tuple of numpy.ndarray
            (train rows, validation rows).
        """
        return np.flatnonzero(self.fold != fold), np.flatnonzero(self.fold == fold)


def load_or_create(
    store: RunStore, task: str, scheme: str, metadata: pd.DataFrame, data_fp: str, n_splits: int = 5, seed: int = 0
) -> Folds:
    """The shared fold file of ``task`` and ``scheme``: read it, or write it once.

    When the cells cannot be split by ``scheme`` (one donor, one day), the
    file holds the folds of its first fallback that can split them, its
    manifest records which (``applied``), and the choice is logged as a warning;
    ``auto`` records the scheme it chose and logs it as information when it writes the file.

    Parameters
    ----------
    store
        The store that holds the fold files.
    task, scheme
        Which fold file.
    metadata
        The training cells' metadata, in the order of the features.
    data_fp
        Fingerprint of the data the folds are made for.
    n_splits, seed
        Parameters of the schemes that take them.

    Returns
    -------
    Folds
        The assignment and its fingerprint.

    Raises
    ------
    UnknownName
        When ``scheme`` is not registered.
    InputError
        When a fold file exists for other data, other cells or other scheme parameters, or is unreadable,
        or when neither ``scheme`` nor its fallbacks can split the cells.
    """
    path = store.fold_file(task, scheme)
    manifest_path = path.with_suffix(".json")
    cell_ids = metadata["cell_id"].to_numpy().astype(str)
    if path.exists() and manifest_path.exists():  # the manifest lands last: without it the file is unfinished
        return _read_folds(path, manifest_path, task, scheme, cell_ids, data_fp, n_splits, seed)
    folds, note = choose_scheme(scheme, metadata, n_splits, seed)
    fold = folds.assign(metadata)
    fingerprint = array_digest(cell_ids.astype(object), fold)
    write_parquet(path, pd.DataFrame({"cell_id": cell_ids, "fold": fold}))
    facts = {"task": task, "scheme": scheme, "n_splits": n_splits, "seed": seed, "data_fingerprint": data_fp}
    if note is not None:
        facts["applied"] = {"scheme": folds.name, "note": note}
        log.log(_level(scheme), note)
    write_manifest(manifest_path, {**facts, "fingerprint": fingerprint})
    return Folds(task, scheme, cell_ids, fold, fingerprint, folds.name if note else None)


def _read_folds(path, manifest_path, task, scheme, cell_ids, data_fp, n_splits, seed) -> Folds:
    """An existing fold file, checked against the data, the scheme's parameters and the cells."""
    manifest = read_manifest(manifest_path) or {}
    if manifest.get("data_fingerprint") != data_fp:
        raise InputError(path, "was made for other data; move it away or use another --oof folder")
    applied = manifest.get("applied") or {}
    folds = FOLD_SCHEMES.get(applied.get("scheme", scheme))(n_splits, seed)
    held = {name: manifest.get(name) for name in folds.recorded}
    if held != folds.settings():
        holds = ", ".join(f"{k}={v}" for k, v in held.items())
        asks = ", ".join(map(str, folds.settings().values()))
        raise InputError(path, f"holds {holds}; the config asks for {asks}")
    frame = _read_fold_file(path)
    if not np.array_equal(frame["cell_id"].to_numpy().astype(str), cell_ids):
        raise InputError(path, "its cells differ from the training cells of this dataset")
    if applied:
        log.log(_level(scheme, again=True), applied.get("note", f"folds.scheme={scheme}: using {folds.name} folds"))
    fold = frame["fold"].to_numpy().astype(np.int64)
    return Folds(task, scheme, cell_ids, fold, manifest["fingerprint"], applied.get("scheme"))


def _level(scheme: str, again: bool = False) -> int:
    """How loud the scheme applied is said: a fallback warns each time; the choice of ``auto`` informs
    when the fold file is made, and is a debug line when it is read back (its manifest records it)."""
    if not FOLD_SCHEMES.get(scheme).chooses:
        return logging.WARNING
    return logging.DEBUG if again else logging.INFO


def read_fold_labels(store: RunStore, stored: str) -> np.ndarray:
    """The fold label per training cell of a fold file named in a manifest.

    Parameters
    ----------
    store
        The store the manifest belongs to.
    stored
        The fold file as the manifest names it (see :meth:`RunStore.resolve`).

    Returns
    -------
    numpy.ndarray
        The ``fold`` column, in the file's cell order.

    Raises
    ------
    InputError
        When the file is missing, unreadable, or named outside the store.
    """
    path = store.resolve(stored)
    if not path.exists():
        raise InputError(path, "fold file not found (was the oof folder moved in parts?)")
    return _read_fold_file(path)["fold"].to_numpy()


def _read_fold_file(path) -> pd.DataFrame:
    try:
        frame = read_parquet_frame(path)
    except Exception as exc:
        raise InputError(
            path, f"unreadable fold file ({type(exc).__name__}); delete it and its .json to make it again"
        ) from None
    if not {"cell_id", "fold"} <= set(frame.columns):
        raise InputError(path, "lacks the columns cell_id and fold; delete it and its .json to make it again")
    return frame
