"""Cross-validation in memory: a learner's out-of-fold and test predictions from arrays.

``cross_validate`` is what ``mmscel level1`` runs (with features, shared fold
files and checkpoints layered on top) and what a tuning trial calls; nothing
here touches a file unless a ``checkpoints`` object is given.

Every fold fits a fresh copy of the learner, seeded with the learner's seed
plus the split's ``seed_offset``, so a fold's result does not depend on which
folds ran before it (a killed run resumes to identical results). Early
stopping uses a part cut from *inside* the training rows, never the fold
being predicted. A learner may first choose a setting on the folds themselves
(see :mod:`mmscel.fold_probe`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from mmscel.fold_probe import FoldProbe, fit_on_rows
from mmscel.learners.base import BaseLearner
from mmscel.progress import track
from mmscel.targets import NativeTargets, TargetSpace, mean_profile_score

log = logging.getLogger(__name__)

Role = Literal["cv", "holdout", "refit"]


@dataclass(frozen=True)
class Split:
    """One fit: train on ``train`` rows, predict ``valid`` rows (and the test rows when asked).

    Parameters
    ----------
    name
        The split's name (a fold number, ``last_day``, ``refit``); checkpoints are kept under it.
    train, valid
        Row indices to fit on and to predict.
    role
        What the fit is for: ``cv`` folds make the out-of-fold predictions, a
        ``holdout`` (the last-day split) is scored on its own, a ``refit`` on all
        rows predicts the test set.
    seed_offset
        Added to the learner's seed for this split's copy.
    predict_test
        Whether the split predicts the test rows.
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    role: Role = "cv"
    seed_offset: int = 0
    predict_test: bool = True


@dataclass
class FoldResult:
    """Predictions of one split (prediction space) and the facts of its fit.

    Attributes
    ----------
    name
        The split's name.
    valid, test
        Predictions of its validation rows and of the test rows (empty when not asked for).
    info
        Row counts, score, mean-profile floor, seed, seconds and the learner's fit facts.
    """

    name: str
    valid: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """Mean per-cell Pearson of the validation rows (None without validation rows)."""
        return self.info.get("score")


@dataclass
class CVResult:
    """What :func:`cross_validate` returns.

    Attributes
    ----------
    oof
        Out-of-fold predictions (rows x prediction space, float32); NaN where no ``cv`` split validates a row.
    test
        Test predictions: the mean of the ``cv`` folds', or the ``refit`` split's; None without test rows.
    per_cell
        Per-cell Pearson of ``oof`` (NaN where not validated).
    folds
        Every split's :class:`FoldResult`, by name, in the order they ran.
    cv_folds
        Names of the ``cv`` splits.
    """

    oof: np.ndarray
    test: np.ndarray | None
    per_cell: np.ndarray
    folds: dict[str, FoldResult]
    cv_folds: list[str]

    @property
    def cv(self) -> float:
        """Mean per-cell Pearson over every validated row."""
        return float(np.nanmean(self.per_cell))

    @property
    def validated_rows(self) -> int:
        """Rows some ``cv`` split validated."""
        return int(np.isfinite(self.per_cell).sum())

    @property
    def cv_mean_profile(self) -> float:
        """The folds' mean-profile floors, weighted by their validation rows."""
        sizes = np.array([self.folds[name].info["n_valid"] for name in self.cv_folds], dtype=np.float64)
        floors = [self.folds[name].info["mean_profile"] for name in self.cv_folds]
        return float(np.dot(floors, sizes) / sizes.sum())


class Checkpoints(Protocol):
    """Where finished folds are kept so that an interrupted cross-validation resumes."""

    def load(self, name: str) -> FoldResult | None:
        """Find a finished split.

        Parameters
        ----------
        name
            The split's name.

        Returns
        -------
        FoldResult or None
            Its stored result, or None when it has not finished.
        """

    def save(self, result: FoldResult, learner: BaseLearner, space: TargetSpace) -> None:
        """Keep a finished split.

        Parameters
        ----------
        result
            The split's predictions and facts.
        learner
            The learner fitted on it.
        space
            The target space its predictions went through (fold-fitted state is saved too).
        """


FoldCallback = Callable[[FoldResult, dict[str, FoldResult]], None]


def cross_validate(
    learner: BaseLearner,
    X: np.ndarray,
    Y,
    folds,
    X_test: np.ndarray | None = None,
    space: TargetSpace | None = None,
    *,
    validation_fraction: float = 0.1,
    checkpoints: Checkpoints | None = None,
    callbacks: Sequence[FoldCallback] = (),
    progress: str | None = None,
) -> CVResult:
    """Fit ``learner`` on every split of ``folds``; return out-of-fold and test predictions and scores.

    Parameters
    ----------
    learner
        A learner whose ``clone`` makes each fold's fresh copy (seed: its seed plus the split's offset),
        after its ``adapt_to_folds`` has chosen any setting it reads off these splits.
    X
        Features of the training rows (rows x features, float32).
    Y
        Scored targets of the training rows: dense (proteins) or CSR (Multiome genes).
    folds
        An array of fold labels (one per row; -1 never validated), an iterable of
        ``(train_rows, valid_rows)`` pairs, or a list of :class:`Split`.
    X_test
        Features of the test rows, or None.
    space
        The target space (default: the targets as they are). An unfitted space
        that is not fitted per fold is fitted on ``Y`` first.
    validation_fraction
        Share of each training fold cut off for early stopping (learners that use it).
    checkpoints
        Where finished folds are stored and found again (see :class:`Checkpoints`).
    callbacks
        Called after every split with its result and all results so far (a
        tuning trial reports and prunes here; raising stops the cross-validation).
    progress
        A description to show a progress bar with, or None.

    Returns
    -------
    CVResult
        Out-of-fold and test predictions in the space's prediction space, per-cell scores, per-split facts.

    Raises
    ------
    ValueError
        When the folds validate no row, or ``X`` and ``Y`` differ in rows.
    FitFailed
        When a fold's fit cannot succeed with the learner's parameters.
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows, Y has {Y.shape[0]}")
    space = space if space is not None else NativeTargets()
    if not space.per_fold and not space.fitted:
        space.fit(Y)
    splits = make_splits(folds)
    if not any(split.role == "cv" for split in splits):
        raise ValueError("the folds validate no row")
    learner_targets = None if space.per_fold else space.transform(Y)
    results: dict[str, FoldResult] = {}
    adapted = None  # chosen on the folds when the first split is fitted (not when every split is checkpointed)
    for split in track(splits, progress or "folds", total=len(splits), enabled=progress is not None):
        result = checkpoints.load(split.name) if checkpoints is not None else None
        if result is None:
            if adapted is None:
                adapted = learner.adapt_to_folds(FoldProbe(X, Y, splits, space, learner_targets))
            result, fitted, fold_space = fit_split(
                adapted, X, Y, split, X_test, space, learner_targets, validation_fraction
            )
            if checkpoints is not None:
                checkpoints.save(result, fitted, fold_space)
            del fitted
            log.info(f"{split.name} ({split.role}, {len(split.train)} rows): {_facts(result)}")
        else:
            log.info(f"{split.name}: read from its checkpoint ({_facts(result)})")
        results[split.name] = result
        for callback in callbacks:
            callback(result, results)
    return _assemble(results, splits, Y, space, X_test is not None)


def _facts(result: FoldResult) -> str:
    score, seconds = result.score, result.info.get("seconds")
    return ("score -" if score is None else f"score {score:.4f}") + (f" in {seconds:.1f} s" if seconds else "")


def make_splits(folds) -> list[Split]:
    """The :class:`Split` list of fold labels, ``(train, valid)`` pairs, or splits.

    Parameters
    ----------
    folds
        An array of fold labels per row (-1: never validated), an iterable of
        ``(train_rows, valid_rows)`` pairs, or splits (returned as they are).

    Returns
    -------
    list of Split
        ``cv`` splits named ``"0"``, ``"1"``, ... with seed offsets 0, 1, ... (or the splits given).
    """
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and np.issubdtype(folds.dtype, np.integer):
        labels = sorted(int(k) for k in np.unique(folds) if k >= 0)
        return [Split(str(k), np.flatnonzero(folds != k), np.flatnonzero(folds == k), seed_offset=k) for k in labels]
    items = list(folds)
    if all(isinstance(item, Split) for item in items):
        return items
    return [
        Split(str(k), np.asarray(train), np.asarray(valid), seed_offset=k) for k, (train, valid) in enumerate(items)
    ]


def fit_split(
    learner: BaseLearner,
    X: np.ndarray,
    Y,
    split: Split,
    X_test: np.ndarray | None,
    space: TargetSpace,
    learner_targets: np.ndarray | None = None,
    validation_fraction: float = 0.1,
) -> tuple[FoldResult, BaseLearner, TargetSpace]:
    """Fit a fresh copy of ``learner`` on one split; predict, score, and time it.

    Parameters
    ----------
    learner, X, Y, X_test, space, validation_fraction
        As in :func:`cross_validate`.
    split
        The split to fit.
    learner_targets
        ``space.transform(Y)`` for all rows, when the space is not fitted per fold.

    Returns
    -------
    tuple
        The fold's result, the fitted learner and the space its predictions went through.

    Raises
    ------
    FitFailed
        When the fit cannot succeed with the learner's parameters.
    InputError
        When the learner's ``params.device`` is a GPU this machine lacks.
    """
    started = time.perf_counter()
    learner.check_device()
    seed = learner.seed + split.seed_offset
    fold_learner = learner.clone(seed=seed)
    fit_rows, stop_rows = early_stopping_split(split.train, validation_fraction, seed, fold_learner.uses_validation)
    fold_space = fit_on_rows(fold_learner, X, Y, fit_rows, stop_rows, space, learner_targets)
    width = fold_space.prediction_width(Y)
    valid = _predict(fold_learner, fold_space, X[split.valid]) if len(split.valid) else _empty(width)
    test = _predict(fold_learner, fold_space, X_test) if split.predict_test and X_test is not None else _empty(width)
    scored = len(split.valid) > 0
    info = {
        "fold": split.name,
        "n_fit": int(len(fit_rows)),
        "n_early_stopping": int(len(stop_rows)),
        "n_valid": int(len(split.valid)),
        "score": float(np.mean(fold_space.score(valid, Y, split.valid))) if scored else None,
        "mean_profile": mean_profile_score(Y, split.train, split.valid) if scored else None,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 3),
        **fold_learner.fit_info(),
    }
    return FoldResult(split.name, valid, test, info), fold_learner, fold_space


def early_stopping_split(rows: np.ndarray, fraction: float, seed: int, wanted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cut the early-stopping part from inside the training rows (never from the predicted fold).

    Parameters
    ----------
    rows
        The training rows of a fold.
    fraction
        Share of them set aside.
    seed
        Seed of the random choice.
    wanted
        Whether the learner early-stops at all (else nothing is cut).

    Returns
    -------
    tuple of ndarray
        (rows to fit, rows to early-stop on).
    """
    if not wanted or len(rows) < 20:
        return rows, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    stop = np.zeros(len(rows), dtype=bool)
    stop[rng.choice(len(rows), size=max(1, int(round(fraction * len(rows)))), replace=False)] = True
    return rows[~stop], rows[stop]


def _predict(learner: BaseLearner, space: TargetSpace, X: np.ndarray) -> np.ndarray:
    return space.inverse(learner.predict(X))


def _empty(width: int) -> np.ndarray:
    return np.zeros((0, width), np.float32)


def _assemble(results: dict[str, FoldResult], splits: list[Split], Y, space: TargetSpace, with_test: bool) -> CVResult:
    cv_splits = [split for split in splits if split.role == "cv"]
    width = _width(results)
    oof = np.full((Y.shape[0], width), np.nan, dtype=np.float32)
    per_cell = np.full(Y.shape[0], np.nan)
    for split in cv_splits:
        oof[split.valid] = results[split.name].valid
        per_cell[split.valid] = space.score(results[split.name].valid, Y, split.valid)
    test = None
    if with_test:  # the folds' mean, the refit, or (both asked for) the mean of the two
        groups = [[s.name for s in splits if s.role == role and s.predict_test] for role in ("cv", "refit")]
        means = [np.mean([results[name].test for name in names], axis=0) for names in groups if names]
        test = np.mean(means, axis=0).astype(np.float32)
    return CVResult(oof, test, per_cell, results, [split.name for split in cv_splits])


def _width(results: dict[str, FoldResult]) -> int:
    for result in results.values():
        for array in (result.valid, result.test):
            if array.ndim == 2 and array.shape[1]:
                return array.shape[1]
    raise RuntimeError("no fold produced predictions")


__all__ = ["CVResult", "Checkpoints", "FoldResult", "Split", "cross_validate", "early_stopping_split", "make_splits"]
