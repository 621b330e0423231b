"""Shared fold assignments: one file per task and scheme, reused by every run and by level-2.

Each scheme is one small class in ``FOLD_SCHEMES``:

- ``donor``: GroupKFold by donor (one fold per training donor);
- ``day``: GroupKFold by day;
- ``donor_day``: GroupKFold by (donor, day) group, ``n_splits`` folds;
- ``last_day``: one split, validating on the last training day after training
  on the earlier days -- the closest mimic of the private leaderboard, which
  is a later day than any training day; cells of earlier days get fold -1;
- ``random``: shuffled KFold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from mmscel.errors import InputError
from mmscel.registry import Registry
from mmscel.store import RunStore, array_digest, read_manifest, write_manifest, write_parquet

FOLD_SCHEMES: Registry[type[FoldScheme]] = Registry("fold scheme")


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


class FoldScheme(ABC):
    """How training cells are assigned to folds.

    Parameters
    ----------
    n_splits
        Folds of the schemes that take a number of folds.
    seed
        Seed of the schemes that shuffle.
    """

    name: ClassVar[str]
    #: the parameters a fold file records and must match when it is read again
    recorded: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_splits: int = 5, seed: int = 0):
        self.n_splits, self.seed = n_splits, seed

    @abstractmethod
    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """Fold number of each training cell (rows of ``metadata``; -1: never validated).

        Parameters
        ----------
        metadata
            The training cells' metadata (``donor`` and ``day`` columns), one row per cell.

        Returns
        -------
        numpy.ndarray
            int64 fold numbers, one per row.

        Raises
        ------
        InputError
            When the cells cannot be split this way (one donor, one day, ...).
        """

    def settings(self) -> dict[str, int]:
        """The recorded parameters and their values."""
        return {name: getattr(self, name) for name in self.recorded}


class _GroupScheme(FoldScheme):
    """GroupKFold over a grouping of the cells; one fold per group unless ``n_splits`` is recorded."""

    def groups(self, metadata: pd.DataFrame) -> np.ndarray:
        """The group of each cell: its value in the column named after the scheme.

        Parameters
        ----------
        metadata
            The cells' metadata.

        Returns
        -------
        numpy.ndarray
            One group label (str) per row.
        """
        return metadata[self.name].astype(str).to_numpy()

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """GroupKFold by :meth:`groups`."""
        groups = self.groups(metadata)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise InputError(
                f"folds.scheme={self.name}",
                f"needs at least two {self.name} groups in the training cells, found {n_groups}",
            )
        wanted = self.n_splits if "n_splits" in self.recorded else n_groups
        fold = np.empty(len(metadata), dtype=np.int64)
        splitter = GroupKFold(n_splits=min(n_groups, wanted))
        for k, (_, validate) in enumerate(splitter.split(np.zeros(len(metadata)), groups=groups)):
            fold[validate] = k
        return fold


@FOLD_SCHEMES.register("donor")
class DonorFolds(_GroupScheme):
    """One fold per training donor: validation on a donor the model never saw."""

    name = "donor"


@FOLD_SCHEMES.register("day")
class DayFolds(_GroupScheme):
    """One fold per training day."""

    name = "day"


@FOLD_SCHEMES.register("donor_day")
class DonorDayFolds(_GroupScheme):
    """``n_splits`` folds of whole (donor, day) groups."""

    name = "donor_day"
    recorded = ("n_splits",)

    def groups(self, metadata: pd.DataFrame) -> np.ndarray:
        """``<donor>_<day>`` per cell."""
        return (metadata["donor"].astype(str) + "_" + metadata["day"].astype(str)).to_numpy()


@FOLD_SCHEMES.register("last_day")
class LastDayFolds(FoldScheme):
    """One split: train on the earlier days, validate on the last training day."""

    name = "last_day"

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """Fold 0 for the last day's cells, -1 for the others."""
        day = metadata["day"].to_numpy()
        if len(np.unique(day)) < 2:
            raise InputError("folds.scheme=last_day", "the training cells hold a single day; choose another scheme")
        return np.where(day == day.max(), 0, -1).astype(np.int64)


@FOLD_SCHEMES.register("random")
class RandomFolds(FoldScheme):
    """Shuffled KFold with ``n_splits`` folds and ``seed``."""

    name = "random"
    recorded = ("n_splits", "seed")

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """KFold labels."""
        n = len(metadata)
        fold = np.empty(n, dtype=np.int64)
        for k, (_, validate) in enumerate(
            KFold(self.n_splits, shuffle=True, random_state=self.seed).split(np.zeros(n))
        ):
            fold[validate] = k
        return fold


def assign(metadata: pd.DataFrame, scheme: str, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number of each training cell (rows of ``metadata``) under the registered ``scheme``.

    Parameters
    ----------
    metadata
        The training cells' metadata, one row per cell.
    scheme
        A name registered in ``FOLD_SCHEMES``.
    n_splits
        The number of folds, for ``random`` and ``donor_day``.
    seed
        The shuffling seed of ``random``.

    Returns
    -------
    numpy.ndarray
        int64 fold numbers (-1: never validated).

    Raises
    ------
    UnknownName
        When ``scheme`` is not registered.
    InputError
        When the cells cannot be split under ``scheme``.
    """
    return FOLD_SCHEMES.get(scheme)(n_splits, seed).assign(metadata)


def load_or_create(
    store: RunStore, task: str, scheme: str, metadata: pd.DataFrame, data_fp: str, n_splits: int = 5, seed: int = 0
) -> Folds:
    """The shared fold file of ``task`` and ``scheme``: read it, or write it once.

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
        or when the cells cannot be split under ``scheme``.
    """
    path = store.fold_file(task, scheme)
    manifest_path = path.with_suffix(".json")
    cell_ids = metadata["cell_id"].to_numpy().astype(str)
    folds = FOLD_SCHEMES.get(scheme)(n_splits, seed)
    if path.exists() and manifest_path.exists():  # the manifest lands last: without it the file is unfinished
        manifest = read_manifest(manifest_path) or {}
        if manifest.get("data_fingerprint") != data_fp:
            raise InputError(path, "was made for other data; move it away or use another --oof folder")
        held = {name: manifest.get(name) for name in folds.recorded}
        if held != folds.settings():
            holds = ", ".join(f"{k}={v}" for k, v in held.items())
            asks = ", ".join(map(str, folds.settings().values()))
            raise InputError(path, f"holds {holds}; the config asks for {asks}")
        frame = _read_fold_file(path)
        if not np.array_equal(frame["cell_id"].to_numpy().astype(str), cell_ids):
            raise InputError(path, "its cells differ from the training cells of this dataset")
        return Folds(task, scheme, cell_ids, frame["fold"].to_numpy().astype(np.int64), manifest["fingerprint"])
    fold = folds.assign(metadata)
    fingerprint = array_digest(cell_ids.astype(object), fold)
    write_parquet(path, pd.DataFrame({"cell_id": cell_ids, "fold": fold}))
    facts = {"task": task, "scheme": scheme, "n_splits": n_splits, "seed": seed, "data_fingerprint": data_fp}
    write_manifest(manifest_path, {**facts, "fingerprint": fingerprint})
    return Folds(task, scheme, cell_ids, fold, fingerprint)


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
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise InputError(
            path, f"unreadable fold file ({type(exc).__name__}); delete it and its .json to make it again"
        ) from None
    if not {"cell_id", "fold"} <= set(frame.columns):
        raise InputError(path, "lacks the columns cell_id and fold; delete it and its .json to make it again")
    return frame
