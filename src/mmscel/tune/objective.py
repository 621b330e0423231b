"""One tuning trial: the run's cross-validation with sampled values, reported and pruned fold by fold.

A trial fits exactly what ``mmscel level1`` would fit for the trial's config
(same features, shared fold file, target space, seeds), in memory: nothing is
written under ``oof/<task>/``. It skips what only a submission needs (the test
rows' predictions and the ``refit`` split), so its CV and last-day scores are
level-1's. After every ``cv`` fold the trial reports to Optuna (the fold's own
score for the Wilcoxon pruner, which pairs folds across trials; the running
mean for the other pruners) and stops when the pruner says so. Under the
``blend`` objective the fold's score is that of its blend with the task's
finished runs (see :mod:`mmscel.tune.ensemble`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmscel.config import RunConfig
from mmscel.cv import FoldResult, Split
from mmscel.level1 import fit_cv, last_day_result
from mmscel.level1_inputs import Level1Inputs
from mmscel.tune.space import sample, with_values

OBJECTIVES = ("cv", "last_day", "blend")
WORKER_ATTR = "worker"  # user attribute: the host, pid and start time of the process running a trial
FACTS_ATTR = "facts"  # study attribute: every fact the study was made from, written at once


class FoldReporter:
    """A :func:`mmscel.cv.cross_validate` callback that reports each ``cv`` fold to a trial and prunes.

    Parameters
    ----------
    trial
        The running :class:`optuna.Trial`.
    cv_folds
        Names of the ``cv`` splits, in order (their index is the reported step).
    per_fold
        Report each fold's own score (Wilcoxon) instead of the running mean.
    fold_value
        What a fold reports, from its name and predictions (None: the fold's score);
        the values are kept in the ``blend_fold_scores`` user attribute.
    """

    def __init__(self, trial, cv_folds: list[str], per_fold: bool, fold_value: Callable | None = None):
        self.trial = trial
        self.steps = {name: step for step, name in enumerate(cv_folds)}
        self.per_fold = per_fold
        self.fold_value = fold_value
        self.scores: dict[str, float] = {}
        self.reported: dict[str, float] = {}

    def __call__(self, result: FoldResult, results: dict[str, FoldResult]) -> None:
        """Report a finished split; raise :class:`optuna.TrialPruned` when the pruner stops the trial."""
        import optuna

        if result.name not in self.steps:
            return
        self.scores[result.name] = result.score
        self.trial.set_user_attr("fold_scores", dict(self.scores))
        if self.fold_value is None:
            self.reported[result.name] = result.score
        else:
            self.reported[result.name] = self.fold_value(result.name, result.valid)
            self.trial.set_user_attr("blend_fold_scores", dict(self.reported))
        value = self.reported[result.name] if self.per_fold else float(np.mean(list(self.reported.values())))
        self.trial.report(value, self.steps[result.name])
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_fold", result.name)
            raise optuna.TrialPruned(f"pruned after fold {result.name}")


class Objective:
    """The function a study optimises: sample, fit the trial's config on the shared folds, return its score.

    Parameters
    ----------
    base
        The run config the space is searched around.
    space
        Dotted keys to distributions (see :mod:`mmscel.tune.space`).
    inputs_for
        Gives the features, targets and folds of a config (cached by the session); its ``where``
        (data folder, cache, store) names the store whose runs the ``blend`` objective reads.
    objective
        ``cv`` (mean per-cell Pearson over the validated cells), ``last_day`` (the last-day
        holdout) or ``blend`` (the nested score of the trial's blend with the task's finished
        runs, see :mod:`mmscel.tune.ensemble`).
    per_fold
        Report fold scores rather than running means (see :class:`FoldReporter`).
    """

    def __init__(
        self,
        base: RunConfig,
        space: dict,
        inputs_for: Callable[[RunConfig], Level1Inputs],
        objective: str = "cv",
        per_fold: bool = True,
    ):
        self.base = base
        self.space = space
        self.inputs_for = inputs_for
        self.objective = objective
        self.per_fold = per_fold
        self.ensembles: dict = {}

    def __call__(self, trial) -> float:
        """Run one trial; its fold scores, CV, last-day (and blend) scores are kept as user attributes."""
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        config = trial_config(self.base, sample(trial, self.space))
        inputs = trial_inputs(self.inputs_for(config))
        space = inputs.target_space(config)
        ensemble = self._ensemble(trial.study, config, inputs, space) if self.objective == "blend" else None
        cv_folds = [split.name for split in inputs.plan(config) if split.role == "cv"]
        reporter = FoldReporter(trial, cv_folds, self.per_fold, ensemble.fold_score if ensemble else None)
        result = fit_cv(config, inputs, space, callbacks=[reporter])
        last_day = last_day_result(config, result).get("score")
        trial.set_user_attr("cv", result.cv)
        trial.set_user_attr("last_day", last_day)
        if ensemble is None:
            return result.cv if self.objective == "cv" else last_day
        blend = ensemble.score(result.oof)
        trial.set_user_attr("blend", blend.nested)
        trial.set_user_attr("blend_in_sample", blend.in_sample)
        trial.set_user_attr("blend_weights", blend.weights)
        return blend.nested

    def _ensemble(self, study, config: RunConfig, inputs: Level1Inputs, space):
        """The study's runs to blend with, loaded once per target space (refused when they changed)."""
        from mmscel.targets import blend_key
        from mmscel.tune.ensemble import RUNS_ATTR, Ensemble

        key = repr(blend_key(space.describe()))
        if key not in self.ensembles:
            store = self.inputs_for.where[2]
            self.ensembles = {key: Ensemble.load(store, config, inputs, space, recorded_facts(study)[RUNS_ATTR])}
        return self.ensembles[key]


class _TrialInputs(Level1Inputs):
    """A trial's view of a config's inputs: no test rows, and no ``refit`` split in its plan."""

    def plan(self, config: RunConfig) -> list[Split]:
        """The config's splits without ``refit`` (which only predicts the test rows)."""
        return [split for split in super().plan(config) if split.role != "refit"]


def trial_inputs(inputs: Level1Inputs) -> Level1Inputs:
    """What a trial fits on: ``inputs`` without test rows and without a ``refit`` split.

    A trial is scored on the folds alone; every ``cv`` and holdout split keeps
    its rows and seed, so the trial's scores are those of ``mmscel level1``.

    Parameters
    ----------
    inputs
        A config's inputs (shared with the session's cache; nothing is copied).

    Returns
    -------
    Level1Inputs
    """
    fields = {field.name: getattr(inputs, field.name) for field in dataclasses.fields(inputs)}
    return _TrialInputs(**{**fields, "features": dataclasses.replace(inputs.features, test=None)})


def trial_config(base: RunConfig, values: dict) -> RunConfig:
    """The config a trial fits: ``base`` with the sampled values (and without its ``tune`` block).

    Parameters
    ----------
    base
        The run config.
    values
        Dotted keys to sampled values.

    Returns
    -------
    RunConfig
        Validated; its hash ignores ``tune``.
    """
    return with_values(base, values)


def worker_identity() -> dict:
    """This process: host, pid and start time (ticks since boot), enough to tell whether it still runs.

    Returns
    -------
    dict
    """
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (None when unknown or gone).

    Parameters
    ----------
    pid
        A process id on this host (``/proc`` tells its start; a reused pid
        then has another start time than the process that recorded it).

    Returns
    -------
    int or None
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])  # field 22; the command name may hold spaces


def worker_alive(worker: dict) -> bool:
    """Whether the process that recorded ``worker`` (see :func:`worker_identity`) still runs.

    Parameters
    ----------
    worker
        A trial's worker attribute.

    Returns
    -------
    bool
        True for a process on another host (it cannot be checked from here).
    """
    if worker.get("host") != socket.gethostname():
        return True
    start = process_start(int(worker["pid"]))
    if start is None:
        return not os.path.isdir("/proc/self") and _signal_alive(int(worker["pid"]))
    return worker.get("start") is None or start == worker["start"]


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded_facts(study) -> dict | None:
    """The facts a study was made from (task, learner, objective, data, folds, ...), None for a new study.

    Parameters
    ----------
    study
        An Optuna study.

    Returns
    -------
    dict or None
    """
    attrs = study.user_attrs
    if FACTS_ATTR in attrs:
        return attrs[FACTS_ATTR]
    return attrs if "fold_fingerprint" in attrs else None  # facts kept as separate attributes only
