"""Settings a learner reads off the cross-validation folds before they are fitted.

Some settings are data-dependent in a way no fixed default serves: how long an MLP should train on a
few hundred cells is one (one dataset's folds keep gaining past the count another's start to lose at).
A learner that chooses such a setting implements :meth:`~mmscel.learners.base.BaseLearner.adapt_to_folds`:
it is handed a :class:`FoldProbe`, fits a probe copy of itself on each ``cv`` split while watching
that split's validation rows, and returns a copy with the setting chosen. Every fold, the refit and the
test predictions then use that copy, so the out-of-fold predictions come from fits that never saw their
rows; only the one setting was chosen on them, as any hyperparameter chosen by CV is.

The choice is deterministic (seeded probes on the same splits), so a resumed run, a tuning trial and a
Dask worker fitting one fold all make the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmscel.learners.base import BaseLearner, FitData
from mmscel.targets import TargetSpace

if TYPE_CHECKING:
    from mmscel.cv import Split


class FoldProbe:
    """The ``cv`` splits of a cross-validation, for a learner to fit probe copies on.

    Parameters
    ----------
    X, Y
        Features and scored targets of the training rows.
    splits
        Every split of the cross-validation; only the ``cv`` splits with validation rows are probed.
    space
        The target space (fitted per split when it is fitted per fold).
    learner_targets
        ``space.transform(Y)`` for all rows, when the space is not fitted per fold.
    """

    def __init__(self, X, Y, splits: Sequence[Split], space: TargetSpace, learner_targets=None):
        self.X, self.Y, self.space, self.learner_targets = X, Y, space, learner_targets
        self.splits = [split for split in splits if split.role == "cv" and len(split.valid)]

    @property
    def train_rows(self) -> list[int]:
        """Rows each probed split trains on."""
        return [len(split.train) for split in self.splits]

    def fit(self, probe: BaseLearner) -> list[BaseLearner]:
        """Fit a copy of ``probe`` on each split's training rows, its validation rows given as ``valid``.

        Parameters
        ----------
        probe
            The learner to copy; each copy is seeded with its seed plus the split's offset, as the fold's fit is.

        Returns
        -------
        list of BaseLearner
            The fitted copies, one per probed split, in order.
        """
        fitted = []
        for split in self.splits:
            copy = probe.clone(seed=probe.seed + split.seed_offset)
            fit_on_rows(copy, self.X, self.Y, split.train, split.valid, self.space, self.learner_targets)
            fitted.append(copy)
        return fitted


def fit_on_rows(
    learner: BaseLearner, X, Y, fit_rows: np.ndarray, watch_rows: np.ndarray, space: TargetSpace, learner_targets
) -> TargetSpace:
    """Fit ``learner`` on ``fit_rows``, handing it ``watch_rows`` as its validation part.

    Parameters
    ----------
    learner
        An unfitted learner, fitted in place.
    X, Y, space, learner_targets
        As in :class:`FoldProbe`.
    fit_rows
        The rows to fit on.
    watch_rows
        The rows given as ``valid`` (early stopping, or a probe's curve); empty for none.

    Returns
    -------
    TargetSpace
        The space the learner's targets went through (fitted on ``fit_rows`` when it is fitted per fold).
    """
    fold_space = space.clone().fit_rows(Y, fit_rows) if space.per_fold else space
    parts = [_fit_data(X, Y, rows, fold_space, learner_targets, learner) for rows in (fit_rows, watch_rows)]
    learner.fit(*parts, fold_space.learner_basis)
    return fold_space


def _fit_data(X, Y, rows: np.ndarray, space: TargetSpace, learner_targets, learner: BaseLearner) -> FitData | None:
    """What ``learner`` fits on for ``rows`` (None for no rows); the full targets only to learners that read them."""
    if len(rows) == 0:
        return None
    targets = space.transform_rows(Y, rows) if learner_targets is None else learner_targets[rows]
    full = space.basis_targets(Y, rows) if space.learner_basis is not None and learner.uses_full_targets else None
    return FitData(X[rows], targets, full)


__all__ = ["FoldProbe", "fit_on_rows"]
