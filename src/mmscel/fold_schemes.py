"""Fold schemes: how training cells are assigned to folds, one small class each in ``FOLD_SCHEMES``.

- ``donor``: GroupKFold by donor (one fold per training donor);
- ``day``: GroupKFold by day;
- ``donor_day``: GroupKFold by (donor, day) group, ``n_splits`` folds;
- ``last_day``: one split, validating on the last training day after training
  on the earlier days -- the closest mimic of the private leaderboard, which
  is a later day than any training day; cells of earlier days get fold -1;
- ``random``: shuffled KFold;
- ``auto``: donor folds when the training cells hold two donors or more, else
  day folds, else random folds.

A scheme the training cells cannot be split by (``donor`` on data of one
donor, ``day`` on data of one day) falls back to the first of its
``fallback`` schemes that can split them (see :func:`choose_scheme`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from mmscel.errors import InputError
from mmscel.registry import Registry

FOLD_SCHEMES: Registry[type[FoldScheme]] = Registry("fold scheme")


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
    #: the scheme stands for the first of its ``fallback`` schemes that splits the cells
    chooses: ClassVar[bool] = False

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

    def require_usable(self, metadata: pd.DataFrame) -> None:
        """Raise the one-line :class:`InputError` of :meth:`unusable` when the cells cannot be split."""
        problem = self.unusable(metadata)
        if problem is not None:
            raise InputError(f"folds.scheme={self.name}", problem)

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
        self.require_usable(metadata)
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
        self.require_usable(metadata)
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
        self.require_usable(metadata)
        n = len(metadata)
        fold = np.empty(n, dtype=np.int64)
        for k, (_, validate) in enumerate(
            KFold(self.n_splits, shuffle=True, random_state=self.seed).split(np.zeros(n))
        ):
            fold[validate] = k
        return fold


@FOLD_SCHEMES.register("auto")
class AutoFolds(FoldScheme):
    """Donor folds when the training cells hold two donors or more, else day folds, else random folds."""

    name = "auto"
    fallback = ("donor", "day", "random")
    chooses = True

    def assign(self, metadata: pd.DataFrame) -> np.ndarray:
        """The folds of the first of :attr:`fallback` that splits the cells."""
        return choose_scheme(self.name, metadata, self.n_splits, self.seed)[0].assign(metadata)


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
        The scheme to apply, and the one-line note that says which it is and why when it is not
        ``scheme`` (None when it is). A scheme that ``chooses`` (``auto``) always has a note.

    Raises
    ------
    UnknownName
        When ``scheme`` is not registered.
    InputError
        When neither ``scheme`` nor any of its fallbacks can split the cells.
    """
    asked = FOLD_SCHEMES.get(scheme)(n_splits, seed)
    tried = [] if asked.chooses else [asked]
    tried += [FOLD_SCHEMES.get(name)(n_splits, seed) for name in asked.fallback]
    reasons: list[str] = []
    for candidate in tried:
        reason = candidate.unusable(metadata)
        if reason is None:
            return candidate, _note(asked, candidate, metadata, reasons)
        reasons.append(reason if candidate is asked else f"({candidate.name} folds: {reason})")
    lead = ["no scheme splits the training cells"] if asked.chooses else []
    raise InputError(f"folds.scheme={scheme}", " ".join(lead + reasons))


def _note(asked: FoldScheme, chosen: FoldScheme, metadata: pd.DataFrame, reasons: list[str]) -> str | None:
    if chosen is asked:
        return None
    if asked.chooses:
        return " ".join([f"folds.scheme={asked.name}: {chosen.describe(metadata)}", *reasons])
    return f"folds.scheme={asked.name}: {' '.join(reasons)}; using {chosen.describe(metadata)} instead"
