"""Seed bagging: several copies of one learner, fitted with different seeds, predictions averaged.

A standard competition device for learners whose fit depends on the seed (the
MLP's initialisation and batch order, the GBDTs' feature and row sampling):
averaging the copies cancels part of that variance. A bag is itself a learner,
so level-1 treats it like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmscel.learners.base import BaseLearner, FitData, LearnerParams
from mmscel.targets import TargetBasis

if TYPE_CHECKING:
    from mmscel.fold_probe import FoldProbe

SEED_STRIDE = 10_007  # member i uses seed + i * SEED_STRIDE: clear of the per-fold offsets of the same run


class SeedBag(BaseLearner):
    """``n_members`` copies of ``learner_cls`` with seeds ``seed + i * SEED_STRIDE``; predictions are their mean.

    Parameters
    ----------
    learner_cls
        The class of the members.
    params
        The members' parameters (a ``learner_cls.Params`` instance), shared by all.
    n_members
        How many copies.
    seed
        Seed of the first member; member ``i`` gets ``seed + i * SEED_STRIDE``.
    n_jobs
        Threads of each member (members fit one after the other).

    Raises
    ------
    ValueError
        When ``n_members`` is below 1.
    """

    name = "bag"
    Params = LearnerParams

    def __init__(
        self, learner_cls: type[BaseLearner], params: LearnerParams, n_members: int, seed: int = 0, n_jobs: int = 2
    ):
        if n_members < 1:
            raise ValueError(f"a bag needs at least one member, got {n_members}")
        self.learner_cls = learner_cls
        self.members = [learner_cls(params, seed=seed + i * SEED_STRIDE, n_jobs=n_jobs) for i in range(n_members)]
        # a bag early-stops and reads targets as its members (whose parameters may turn early stopping off)
        self.uses_validation = self.members[0].uses_validation
        self.uses_full_targets = self.members[0].uses_full_targets
        self.params, self.seed, self.n_jobs, self.best_iterations = params, seed, n_jobs, None

    def clone(self, seed: int | None = None) -> SeedBag:
        """An unfitted bag of the same learner and size (seeded with ``seed``, when given)."""
        seed = self.seed if seed is None else seed
        return SeedBag(self.learner_cls, self.params, len(self.members), seed=seed, n_jobs=self.n_jobs)

    def adapt_to_folds(self, probe: FoldProbe) -> SeedBag:
        """A bag whose members take the settings the first member chooses on the folds (itself when none)."""
        adapted = self.members[0].adapt_to_folds(probe)
        if adapted is self.members[0]:
            return self
        return SeedBag(self.learner_cls, adapted.params, len(self.members), seed=self.seed, n_jobs=self.n_jobs)

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> SeedBag:
        """Fit every member on the same rows (each early-stops on the same ``valid``)."""
        for member in self.members:
            member.fit(train, valid, basis)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The members' mean prediction (float32), accumulated in float64."""
        total = None
        for member in self.members:
            prediction = member.predict(X).astype(np.float64)
            total = prediction if total is None else total + prediction
        return (total / len(self.members)).astype(np.float32)

    def save(self, folder: Path) -> list[Path]:
        """Each member's native files in ``folder/seed_<i>/``."""
        return [path for i, member in enumerate(self.members) for path in member.save(Path(folder) / f"seed_{i}")]

    def load(self, folder: Path) -> SeedBag:
        """Load the members written by :meth:`save`."""
        for i, member in enumerate(self.members):
            member.load(Path(folder) / f"seed_{i}")
        return self

    def fit_info(self) -> dict[str, Any]:
        """Every member's facts and seeds; ``best_iterations`` pooled over the members."""
        members = [m.fit_info() for m in self.members]
        info: dict[str, Any] = {"bag_seeds": [m.seed for m in self.members], "members": members}
        pooled = [i for facts in members for i in facts.get("best_iterations", [])]
        if pooled:
            info["best_iterations"] = pooled
        return info
