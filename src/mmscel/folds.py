"""Shared fold assignments: one file per task and scheme, reused by every run and by level-2.

Each scheme is one small class in ``FOLD_SCHEMES``:

- ``donor``: GroupKFold by donor (one fold per training donor);
- ``day``: GroupKFold by day;
- ``donor_day``: GroupKFold by (donor, day) group, ``n_splits`` folds;
- ``last_day``: one split, validating on the last training day after training
  on the earlier days -- the closest mimic of the private leaderboard, which
  is a later day than any training day; cells of earlier days get fold -1;
- ``random``: shuffled KFold.

A scheme the training cells cannot be split by (``donor`` on data of one
donor, ``day`` on data of one day) falls back to the first of its
``fallback`` schemes that can split them; the fold file keeps its name, its
manifest records the scheme applied and why, and one line is logged.
"""

from __future__ import annotations

import logging
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
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Folds:
    """A fold assignment of the training cells (fold -1: never validated)."""

    task: str
    scheme: str
    cell_ids: np.ndarray
    fold: np.ndarray
    fingerprint: str
    applied: str | None = None  # the fallback scheme used instead of ``scheme``, if any

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
    #: schemes tried in turn when the training cells cannot be split by this one
    fallback: ClassVar[tuple[str, ...]] = ()

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

    def unusable(self, metadata: pd.DataFrame) -> str | None:
        """Why the cells of ``metadata`` cannot be split by this scheme (None: they can)."""
        return None

    def describe(self, metadata: pd.DataFrame) -> str:
        """The scheme in a few words (``day folds (3 days)``), for the line that announces a fallback."""
        return f"{self.name} folds"


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

    def unusable(self, metadata: pd.DataFrame) -> str | None:
        """Fewer than two groups."""
        n_groups = len(np.unique(self.groups(metadata)))
        if n_groups < 2:
            return f"needs at least two {self.name} groups in the training cells, found {n_groups}"
        return None

    def describe(self, metadata: pd.DataFrame) -> str:
        """``day folds (3 days)``."""
        return f"{self.name} folds ({len(np.unique(self.groups(metadata)))} {self.name}s)"

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """GroupKFold by :meth:`groups`."""
        problem = self.unusable(metadata)
        if problem is not None:
            raise InputError(f"folds.scheme={self.name}", problem)
        groups = self.groups(metadata)
        n_groups = len(np.unique(groups))
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
    fallback = ("day", "random")


@FOLD_SCHEMES.register("day")
class DayFolds(_GroupScheme):
    """One fold per training day."""

    name = "day"
    fallback = ("random",)


@FOLD_SCHEMES.register("donor_day")
class DonorDayFolds(_GroupScheme):
    """``n_splits`` folds of whole (donor, day) groups."""

    name = "donor_day"
    recorded = ("n_splits",)
    fallback = ("random",)

    def groups(self, metadata: pd.DataFrame) -> np.ndarray:
        """``<donor>_<day>`` per cell."""
        return (metadata["donor"].astype(str) + "_" + metadata["day"].astype(str)).to_numpy()


@FOLD_SCHEMES.register("last_day")
class LastDayFolds(FoldScheme):
    """One split: train on the earlier days, validate on the last training day."""

    name = "last_day"

    def unusable(self, metadata: pd.DataFrame) -> str | None:
        """A single training day."""
        if metadata["day"].nunique() < 2:
            return "the training cells hold a single day; choose another scheme"
        return None

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """Fold 0 for the last day's cells, -1 for the others."""
        problem = self.unusable(metadata)
        if problem is not None:
            raise InputError(f"folds.scheme={self.name}", problem)
        day = metadata["day"].to_numpy()
        return np.where(day == day.max(), 0, -1).astype(np.int64)


@FOLD_SCHEMES.register("random")
class RandomFolds(FoldScheme):
    """Shuffled KFold with ``n_splits`` folds and ``seed``."""

    name = "random"
    recorded = ("n_splits", "seed")

    def unusable(self, metadata: pd.DataFrame) -> str | None:
        """Fewer cells than folds."""
        if len(metadata) < self.n_splits:
            return f"needs at least {self.n_splits} training cells for {self.n_splits} folds, found {len(metadata)}"
        return None

    def describe(self, metadata: pd.DataFrame) -> str:
        """``5 random folds (seed 0)``."""
        return f"{self.n_splits} random folds (seed {self.seed})"

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """KFold labels."""
        problem = self.unusable(metadata)
        if problem is not None:
            raise InputError(f"folds.scheme={self.name}", problem)
        n = len(metadata)
        fold = np.empty(n, dtype=np.int64)
        for k, (_, validate) in enumerate(
            KFold(self.n_splits, shuffle=True, random_state=self.seed).split(np.zeros(n))
        ):
            fold[validate] = k
        return fold


def choose_scheme(
    scheme: str, metadata: pd.DataFrame, n_splits: int = 5, seed: int = 0
) -> tuple[FoldScheme, str | None]:
    """The scheme that splits the cells: ``scheme`` itself, or the first of its fallbacks that can.

    Parameters
    ----------
    scheme
        A name registered in ``FOLD_SCHEMES``.
    metadata
        The training cells' metadata.
    n_splits, seed
        Parameters of the schemes that take them.

    Returns
    -------
    tuple of (FoldScheme, str or None)
        The scheme to apply, and the one-line note that says why it is not ``scheme`` (None when it is).

    Raises
    ------
    UnknownName
        When ``scheme`` is not registered.
    InputError
        When neither ``scheme`` nor any of its fallbacks can split the cells.
    """
    asked = FOLD_SCHEMES.get(scheme)(n_splits, seed)
    problem = asked.unusable(metadata)
    if problem is None:
        return asked, None
    skipped = ""
    for name in asked.fallback:
        candidate = FOLD_SCHEMES.get(name)(n_splits, seed)
        reason = candidate.unusable(metadata)
        if reason is None:
            return candidate, f"folds.scheme={scheme}: {problem}{skipped}; using {candidate.describe(metadata)} instead"
        skipped += f" ({name} folds: {reason})"
    raise InputError(f"folds.scheme={scheme}", problem + skipped)


def load_or_create(
    store: RunStore, task: str, scheme: str, metadata: pd.DataFrame, data_fp: str, n_splits: int = 5, seed: int = 0
) -> Folds:
    """The shared fold file of ``task`` and ``scheme``: read it, or write it once.

    When the cells cannot be split by ``scheme`` (one donor, one day), the
    file holds the folds of its first fallback that can split them, its
    manifest records which (``applied``), and the choice is logged as a warning.

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
        log.warning(note)
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
        log.warning(applied.get("note", f"folds.scheme={scheme}: using {folds.name} folds"))
    fold = frame["fold"].to_numpy().astype(np.int64)
    return Folds(task, scheme, cell_ids, fold, manifest["fingerprint"], applied.get("scheme"))


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
