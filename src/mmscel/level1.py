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

import numpy as np
import pandas as pd

from mmscel import folds as folds_module
from mmscel.config import RunConfig, load_run_config, validate_run_config
from mmscel.cv import CVResult, Split, cross_validate
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.features import FeatureSet, build_features
from mmscel.learners import FitFailed, learner_class, make_learner
from mmscel.progress import log_file
from mmscel.store import LAST_DAY, RunRecord, RunStore, data_fingerprint, digest, library_versions
from mmscel.targets import GeneSVD, TargetSpace

log = logging.getLogger(__name__)
RUN_LOG = "run.log"  # the run's log file, in its folder

REFIT = "refit"
SEED_OFFSETS = {LAST_DAY: 1000, REFIT: 2000}  # cv folds use their number


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
        Bad config, unprepared data, a clashing run without ``overwrite``, or a fit that cannot succeed.
    """
    started = time.perf_counter()
    config = as_run_config(config)
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    with store.run_lock(config.task, config.name):  # a second process of the same run waits, then reuses it
        return _run(config, data_dir, cache_dir, store, overwrite, started)


def _run(config: RunConfig, data_dir, cache_dir, store: RunStore, overwrite: bool, started: float) -> RunResult:
    config_hash = digest(config.hashed())
    data_fp = data_fingerprint(config.task, data_dir, cache_dir)
    existing = _existing_run(store, config, config_hash, data_fp, overwrite)
    if existing is not None:
        log.info(f"{config.task}/{config.name}: an identical run has finished; reused")
        return RunResult(existing, reused=True)
    with log_file(store.run_dir(config.task, config.name) / RUN_LOG):
        log.info(f"{config.task}/{config.name}: {config.learner}, config {config_hash[:12]}, data {data_fp[:12]}")
        return _fit_and_write(config, data_dir, cache_dir, store, started, config_hash, data_fp)


def _fit_and_write(config: RunConfig, data_dir, cache_dir, store: RunStore, started: float, config_hash, data_fp):
    inputs = load_inputs(config, data_dir, cache_dir, store)
    space = inputs.target_space(config)
    facts = {"config_hash": config_hash, "data_fingerprint": data_fp, "fold_fingerprint": inputs.folds.fingerprint}
    store.mark_started(config.task, config.name, facts)
    result = fit_cv(
        config,
        inputs,
        space,
        checkpoints=store.checkpoints(config.task, config.name),
        progress=f"{config.task}/{config.name} folds",
    )
    manifest = _manifest(config, config_hash, store, inputs.features, inputs.folds, space, result, started)
    record = store.write_run(config.task, config.name, {"oof": result.oof, "test": result.test}, manifest)
    log.info(f"{config.task}/{config.name}: CV {result.cv:.4f}, {manifest['wall_seconds']:.0f} s")
    return RunResult(record, reused=False, cv=result)


@dataclass
class Level1Inputs:
    """What a run's cross-validation reads: features, training metadata and targets, the shared folds.

    Attributes
    ----------
    features
        The run's feature set (train and test rows).
    metadata
        The training cells' metadata, in the order of the features.
    Y
        The scored targets of the training cells (dense proteins or CSR genes).
    folds
        The shared fold assignment of the run's scheme.
    gene_svd
        The Multiome gene SVD fitted on ``Y`` (None for CITEseq).
    """

    features: FeatureSet
    metadata: pd.DataFrame
    Y: object
    folds: folds_module.Folds
    gene_svd: GeneSVD | None

    def target_space(self, config: RunConfig) -> TargetSpace:
        """The target space ``config`` asks for on these targets (see :meth:`RunConfig.target_space`)."""
        return config.target_space(self.Y.shape[1], self.gene_svd, self.metadata)

    def plan(self, config: RunConfig) -> list[Split]:
        """The splits ``config`` fits on these folds (see :func:`fold_plan`)."""
        return fold_plan(config, self.folds, self.metadata["day"].to_numpy())


def load_inputs(config: RunConfig, data_dir, cache_dir, store: RunStore) -> Level1Inputs:
    """Build (or read from the cache) the run's features, and load its targets and the shared folds.

    Parameters
    ----------
    config
        The run config (task, features, seed, folds).
    data_dir, cache_dir
        The prepared competition folder and its cache.
    store
        The store holding the feature cache and the fold files.

    Returns
    -------
    Level1Inputs

    Raises
    ------
    InputError
        Unprepared data, or a fold file whose cells are not in the order of the features.
    """
    features = build_features(config.task, config.feature_config(), data_dir, cache_dir, store, seed=config.seed)
    train = load(config.task, "train", data_dir, cache_dir, check=False, inputs=False)
    metadata = train.metadata
    scheme = config.folds
    folds = folds_module.load_or_create(
        store, config.task, scheme.scheme, metadata, features.data_fingerprint, scheme.n_splits, scheme.seed
    )
    if not np.array_equal(folds.cell_ids, features.train_ids.astype(str)):
        raise InputError(store.fold_file(config.task, scheme.scheme), "cells are not in the order of the features")
    Y = train.targets if config.task == "multi" else np.asarray(train.targets, dtype=np.float32)
    gene_svd = features.target_space.fitted_on(Y) if features.target_space is not None else None
    return Level1Inputs(features, metadata, Y, folds, gene_svd)


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


def fold_plan(config: RunConfig, folds: folds_module.Folds, day: np.ndarray) -> list[Split]:
    """The run's splits: the scheme's folds, the last-day holdout, and a refit on all rows when asked.

    Parameters
    ----------
    config
        The run config (its scheme and ``test_predictions``).
    folds
        The shared fold assignment.
    day
        The day of each training cell.

    Returns
    -------
    list of Split
        ``cv`` splits named by fold number, then ``last_day`` (a holdout) and ``refit`` where they apply.
    """
    refit = config.test_predictions == "refit"
    plan = [Split(str(k), *folds.split(k), seed_offset=k, predict_test=not refit) for k in folds.fold_ids]
    if config.folds.scheme != "last_day" and len(np.unique(day)) > 1:  # imported data may hold one day
        last = day == day.max()
        rows = (np.flatnonzero(~last), np.flatnonzero(last))
        plan.append(Split(LAST_DAY, *rows, role="holdout", seed_offset=SEED_OFFSETS[LAST_DAY], predict_test=False))
    if refit:
        rows = (np.arange(len(day)), np.zeros(0, dtype=np.int64))
        plan.append(Split(REFIT, *rows, role="refit", seed_offset=SEED_OFFSETS[REFIT]))
    return plan


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
