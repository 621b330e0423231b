"""Shared fold assignments: one file per task and scheme, reused by every run and by level-2.

Schemes:

- ``donor``: GroupKFold by donor (one fold per training donor);
- ``day``: GroupKFold by day;
- ``donor_day``: GroupKFold by (donor, day) group;
- ``last_day``: one split, validating on the last training day after training
  on the earlier days -- the closest mimic of the private leaderboard, which
  is a later day than any training day; cells of earlier days get fold -1;
- ``random``: shuffled KFold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from mmscel.errors import InputError
from mmscel.store import array_digest, read_manifest, write_manifest, write_parquet

SCHEMES = ("donor", "day", "donor_day", "last_day", "random")


@dataclass(frozen=True)
class Folds:
    """A fold assignment of the training cells (fold -1: never validated)."""

    task: str
    scheme: str
    cell_ids: np.ndarray
    fold: np.ndarray
    fingerprint: str

    @property
    def fold_ids(self) -> list[int]:
        """The fold numbers that have validation cells (-1 excluded)."""
        return sorted(int(f) for f in np.unique(self.fold) if f >= 0)

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (train, validate) of one fold."""
        return np.flatnonzero(self.fold != fold), np.flatnonzero(self.fold == fold)


def assign(metadata: pd.DataFrame, scheme: str, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number of each training cell (rows of ``metadata``) under ``scheme``."""
    n = len(metadata)
    if scheme == "random":
        fold = np.empty(n, dtype=np.int64)
        for k, (_, validate) in enumerate(KFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n))):
            fold[validate] = k
        return fold
    if scheme == "last_day":
        day = metadata["day"].to_numpy()
        if len(np.unique(day)) < 2:
            raise InputError("folds.scheme=last_day", "the training cells hold a single day; choose another scheme")
        return np.where(day == day.max(), 0, -1).astype(np.int64)
    groups = {
        "donor": metadata["donor"].astype(str),
        "day": metadata["day"].astype(str),
        "donor_day": metadata["donor"].astype(str) + "_" + metadata["day"].astype(str),
    }[scheme].to_numpy()
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise InputError(
            f"folds.scheme={scheme}", f"needs at least two {scheme} groups in the training cells, found {n_groups}"
        )
    fold = np.empty(n, dtype=np.int64)
    splitter = GroupKFold(n_splits=min(n_groups, n_splits if scheme == "donor_day" else n_groups))
    for k, (_, validate) in enumerate(splitter.split(np.zeros(n), groups=groups)):
        fold[validate] = k
    return fold


def _read_fold_file(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise InputError(
            path, f"unreadable fold file ({type(exc).__name__}); delete it and its .json to make it again"
        ) from None
    if not {"cell_id", "fold"} <= set(frame.columns):
        raise InputError(path, "lacks the columns cell_id and fold; delete it and its .json to make it again")
    return frame


def fold_path(oof_root: Path, task: str, scheme: str) -> Path:
    """Where the fold file of a task and scheme lives."""
    return Path(oof_root) / "folds" / f"{task}_{scheme}.parquet"


def load_or_create(
    oof_root: Path, task: str, scheme: str, metadata: pd.DataFrame, data_fp: str, n_splits: int = 5, seed: int = 0
) -> Folds:
    """The shared fold file of ``task`` and ``scheme``: read it, or write it once.

    A fold file made for other data (another data fingerprint, other cells) is
    refused rather than silently replaced.
    """
    path = fold_path(oof_root, task, scheme)
    manifest_path = path.with_suffix(".json")
    cell_ids = metadata["cell_id"].to_numpy().astype(str)
    if path.exists() and manifest_path.exists():  # the manifest lands last: without it the file is unfinished
        manifest = read_manifest(manifest_path) or {}
        if manifest.get("data_fingerprint") != data_fp:
            raise InputError(path, "was made for other data; move it away or use another --oof folder")
        if scheme == "random" and (manifest.get("n_splits"), manifest.get("seed")) != (n_splits, seed):
            raise InputError(
                path,
                f"holds n_splits={manifest.get('n_splits')}, seed={manifest.get('seed')}; "
                f"the config asks for {n_splits}, {seed}",
            )
        if scheme == "donor_day" and manifest.get("n_splits") != n_splits:
            raise InputError(path, f"holds n_splits={manifest.get('n_splits')}; the config asks for {n_splits}")
        frame = _read_fold_file(path)
        if not np.array_equal(frame["cell_id"].to_numpy().astype(str), cell_ids):
            raise InputError(path, "its cells differ from the training cells of this dataset")
        fold = frame["fold"].to_numpy().astype(np.int64)
        return Folds(task, scheme, cell_ids, fold, manifest["fingerprint"])
    fold = assign(metadata, scheme, n_splits, seed)
    fingerprint = array_digest(cell_ids.astype(object), fold)
    write_parquet(path, pd.DataFrame({"cell_id": cell_ids, "fold": fold}))
    write_manifest(
        manifest_path,
        {
            "task": task,
            "scheme": scheme,
            "n_splits": n_splits,
            "seed": seed,
            "data_fingerprint": data_fp,
            "fingerprint": fingerprint,
        },
    )
    return Folds(task, scheme, cell_ids, fold, fingerprint)
