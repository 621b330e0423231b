"""``mmscel level1``: a learner's cross-validation on the shared folds, kept in the store.

Level-1 is :func:`mmscel.cv.cross_validate` with files layered on top: the
cached features, the shared fold file, per-fold checkpoints, and a run folder
``oof/<task>/<run>/`` holding ``oof.npy`` (train rows x prediction space; rows
a scheme never validates are NaN), ``test.npy`` and ``manifest.json``. A run
killed at any moment resumes at its first unfinished fold and ends with
identical results: every fold is fitted with a seed derived from the run's
seed and the fold.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmscel import tracking
from mmscel.config import RunConfig, load_run_config, validate_run_config
from mmscel.cv import CVResult, cross_validate
from mmscel.errors import InputError
from mmscel.features import FeatureSet
from mmscel.learners import FitFailed, learner_class, make_learner
from mmscel.level1_inputs import Level1Inputs, load_inputs
from mmscel.progress import log_file
from mmscel.store import LAST_DAY, RunRecord, RunStore, data_fingerprint, digest, library_versions
from mmscel.targets import TargetSpace

log = logging.getLogger(__name__)
RUN_LOG = "run.log"  # the run's log file, in its folder


@dataclass
class RunResult:
    """A finished run: its record, whether it reuses an identical finished run, and the in-memory result."""

    record: RunRecord
    reused: bool
    cv: CVResult | None = None

    @property
    def run_dir(self) -> Path:
        """The run's folder."""
        return self.record.path

    @property
    def manifest(self) -> dict:
        """The run's manifest."""
        return self.record.manifest


def run_level1(
    config: RunConfig | Mapping | str | Path,
    data_dir="data",
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
    overwrite: bool = False,
) -> RunResult:
    """Run (or resume, or reuse) the level-1 run described by ``config``.

    Parameters
    ----------
    config
        A run config, a mapping of its keys (``name`` defaults to ``<task>_<learner>``), or its YAML file.
    data_dir, cache_dir
        The prepared competition folder and its cache.
    oof_root
        The store (or its root folder).
    overwrite
        Replace a run of the same name made with another config or from other data.

    Returns
    -------
    RunResult
        The run's record (reused when an identical run had finished).

    Raises
    ------
    InputError
        Bad config, unprepared data, a clashing run without ``overwrite``, a fit that cannot succeed,
        or a ``params.device`` this machine lacks (refused before anything is written).
    """
    started = time.perf_counter()
    config = as_run_config(config)
    make_learner(config.learner, config.learner_params()).check_device(f"{config.name}: params.device")
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    with store.run_lock(config.task, config.name):  # a second process of the same run waits, then reuses it
        return _run(config, data_dir, cache_dir, store, overwrite, started)


def _run(config: RunConfig, data_dir, cache_dir, store: RunStore, overwrite: bool, started: float) -> RunResult:
    found, facts = check_run(config, data_dir, cache_dir, store, overwrite)
    if found is not None:
        return found
    with log_file(store.run_dir(config.task, config.name) / RUN_LOG):
        log.info(
            f"{config.task}/{config.name}: {config.learner}, config {facts['config_hash'][:12]}, data "
            f"{facts['data_fingerprint'][:12]}"
        )
        inputs = start_run(config, data_dir, cache_dir, store, facts)
        return finish_run(config, inputs, store, facts, started)


def check_run(
    config: RunConfig, data_dir, cache_dir, store: RunStore, overwrite: bool
) -> tuple[RunResult | None, dict]:
    """The finished identical run to reuse, or the facts a new (or resumed) run is recorded with.

    Parameters
    ----------
    config
        The run config.
    data_dir, cache_dir
        The prepared competition folder and its cache.
    store
        The store; a run of the same name made otherwise is removed when ``overwrite`` is set.
    overwrite
        Replace a run of the same name made with another config or from other data.

    Returns
    -------
    tuple of (RunResult or None, dict)
        The reused run (or None), and ``{"config_hash", "data_fingerprint"}``.

    Raises
    ------
    InputError
        A run of the same name made with another config or from other data, without ``overwrite``.
    """
    facts = {
        "config_hash": digest(config.hashed()),
        "data_fingerprint": data_fingerprint(config.task, data_dir, cache_dir),
    }
    existing = _existing_run(store, config, facts["config_hash"], facts["data_fingerprint"], overwrite)
    if existing is None:
        return None, facts
    log.info(f"{config.task}/{config.name}: an identical run has finished; reused")
    return RunResult(existing, reused=True), facts


def start_run(config: RunConfig, data_dir, cache_dir, store: RunStore, facts: dict) -> Level1Inputs:
    """Load the run's inputs (building its features into the cache) and record the run as started.

    Parameters
    ----------
    config
        The run config.
    data_dir, cache_dir
        The prepared competition folder and its cache.
    store
        The store.
    facts
        :func:`check_run`'s facts; the fold file's fingerprint is added to them.

    Returns
    -------
    Level1Inputs
    """
    inputs = load_inputs(config, data_dir, cache_dir, store)
    facts["fold_fingerprint"] = inputs.folds.fingerprint
    store.mark_started(config.task, config.name, facts)
    return inputs


def finish_run(config: RunConfig, inputs: Level1Inputs, store: RunStore, facts: dict, started: float) -> RunResult:
    """Fit the run's unfinished folds (finished ones are read from their checkpoints) and write the run.

    Parameters
    ----------
    config
        The run config.
    inputs
        Its inputs (:func:`start_run`).
    store
        The store.
    facts
        The facts the run was started with.
    started
        ``time.perf_counter()`` when the run began (its wall time goes into the manifest).

    Returns
    -------
    RunResult
    """
    space = inputs.target_space(config)
    result = fit_cv(
        config,
        inputs,
        space,
        checkpoints=store.checkpoints(config.task, config.name),
        progress=f"{config.task}/{config.name} folds",
    )
    manifest = _manifest(config, facts["config_hash"], store, inputs.features, inputs.folds, space, result, started)
    record = store.write_run(config.task, config.name, {"oof": result.oof, "test": result.test}, manifest)
    log.info(f"{config.task}/{config.name}: CV {result.cv:.4f}, {manifest['wall_seconds']:.0f} s")
    tracking.log_level1(record, config.tracking == "mlflow")  # --mlflow / MMSCEL_MLFLOW; a failure only warns
    return RunResult(record, reused=False, cv=result)


def fit_cv(config: RunConfig, inputs: Level1Inputs, space: TargetSpace, **options) -> CVResult:
    """The run's cross-validation: its learner on the run's splits (see :func:`mmscel.cv.cross_validate`).

    Parameters
    ----------
    config
        The run config (learner, params, seeds, threads, fold plan).
    inputs
        Its features, targets and folds.
    space
        Its target space (``inputs.target_space(config)``).
    **options
        ``checkpoints``, ``callbacks``, ``progress``: as in :func:`mmscel.cv.cross_validate`.

    Returns
    -------
    CVResult

    Raises
    ------
    InputError
        When a fold's fit cannot succeed with the run's parameters.
    """
    learner = make_learner(config.learner, config.learner_params(), config.seed, config.n_jobs, config.seeds)
    try:
        return cross_validate(
            learner,
            inputs.features.train,
            inputs.Y,
            inputs.plan(config),
            inputs.features.test,
            space,
            validation_fraction=config.validation_fraction,
            **options,
        )
    except FitFailed as exc:
        raise InputError(f"{config.name}: params.{exc.param}", exc.problem) from None


def as_run_config(config: RunConfig | Mapping | str | Path) -> RunConfig:
    """A validated run config from a config, a mapping of its keys, or a YAML file.

    Parameters
    ----------
    config
        A :class:`RunConfig` (returned as it is), a mapping of its keys (``name`` defaults to
        ``<task>_<learner>``), or the path of its YAML file (see :func:`mmscel.config.load_run_config`).

    Returns
    -------
    RunConfig
        ``config`` itself when it is one.

    Raises
    ------
    InputError
        One line naming the first problem.
    """
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        raw = dict(config)
        raw.setdefault("name", f"{raw.get('task')}_{raw.get('learner')}")
        return validate_run_config(raw)
    return load_run_config(config)


def _existing_run(store: RunStore, config: RunConfig, config_hash: str, data_fp: str, overwrite: bool):
    """The record of a finished identical run; refuse a different config or other data under the same name."""
    manifest = store.run_manifest(config.task, config.name)
    recorded = manifest or store.run_started(config.task, config.name) or {}
    if recorded.get("config_hash") is None:
        return None
    if recorded["config_hash"] != config_hash:
        problem = f"exists with a different config (hash {recorded['config_hash']} != {config_hash})"
    elif recorded.get("data_fingerprint") not in (None, data_fp):
        problem = f"was made from other data (fingerprint {recorded['data_fingerprint']} != {data_fp})"
    else:
        problem = None
    if problem is not None:
        if not overwrite:
            where = store.run_dir(config.task, config.name)
            raise InputError(where, f"run '{config.name}' {problem}; rename the run or pass --overwrite")
        store.remove_run(config.task, config.name)
        return None
    if manifest is not None and manifest.get("completed"):
        return store.run(config.task, config.name)
    return None  # same config, unfinished: resume from its checkpoints


def _manifest(config, config_hash, store, features: FeatureSet, folds, space, result: CVResult, started) -> dict:
    holdout = last_day_result(config, result)
    return {
        "run": config.name,
        "task": config.task,
        "learner": config.learner,
        "config": config.model_dump(),
        "config_hash": config_hash,
        "data_fingerprint": features.data_fingerprint,
        "feature_fingerprint": features.fingerprint,
        "fold_fingerprint": folds.fingerprint,
        "fold_scheme": config.folds.scheme,
        "fold_file": store.relative(store.fold_file(config.task, config.folds.scheme)),
        "target_space": space.describe(),
        "shapes": {"oof": list(result.oof.shape), "test": list(result.test.shape)},
        "validated_rows": result.validated_rows,
        "cv": result.cv,
        "cv_mean_profile": result.cv_mean_profile,
        "last_day": holdout.get("score"),
        "last_day_mean_profile": holdout.get("mean_profile"),
        "folds": {name: fold.info for name, fold in result.folds.items()},
        "test_predictions": config.test_predictions,
        "seed": config.seed,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "libraries": library_versions(tuple(filter(None, [learner_class(config.learner).library]))),
        "completed": True,
    }


def last_day_result(config: RunConfig, result: CVResult) -> dict:
    """The facts of the split that mimics the private leaderboard (the holdout, or the last_day scheme's fold).

    Parameters
    ----------
    config
        The run config (its fold scheme).
    result
        The run's cross-validation.

    Returns
    -------
    dict
        The split's facts (``score``, ``mean_profile``, ...); empty when the run has no such split.
    """
    if LAST_DAY in result.folds:
        return result.folds[LAST_DAY].info
    if config.folds.scheme == "last_day":
        return result.folds[result.cv_folds[0]].info
    return {}


def list_runs(oof_root: RunStore | str | Path = "oof") -> list[RunRecord]:
    """Finished level-1 runs of every task in a store, best CV first within each task.

    Parameters
    ----------
    oof_root
        A :class:`RunStore`, or the folder to read as one.

    Returns
    -------
    list of RunRecord
        Grouped by task; runs without a CV score come last in their task.

    Raises
    ------
    InputError
        When a run's manifest is corrupt.
    """
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    return store.runs()
