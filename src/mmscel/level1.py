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

import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmscel import folds as folds_module
from mmscel.config import RunConfig, load_run_config, validate_run_config
from mmscel.cv import CVResult, Split, cross_validate
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.features import FeatureSet, build_features
from mmscel.learners import FitFailed, learner_class, make_learner
from mmscel.store import LAST_DAY, RunRecord, RunStore, data_fingerprint, digest, library_versions

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
        return RunResult(existing, reused=True)
    features = build_features(config.task, config.feature_config(), data_dir, cache_dir, store, seed=config.seed)
    train = load(config.task, "train", data_dir, cache_dir, check=False, inputs=False)
    metadata = train.metadata
    folds = folds_module.load_or_create(
        store,
        config.task,
        config.folds.scheme,
        metadata,
        features.data_fingerprint,
        config.folds.n_splits,
        config.folds.seed,
    )
    if not np.array_equal(folds.cell_ids, features.train_ids.astype(str)):
        raise InputError(
            store.fold_file(config.task, config.folds.scheme), "cells are not in the order of the features"
        )
    Y = train.targets if config.task == "multi" else np.asarray(train.targets, dtype=np.float32)
    gene_svd = features.target_space.fitted_on(Y) if features.target_space is not None else None
    space = config.target_space(Y.shape[1], gene_svd)
    facts = {"config_hash": config_hash, "data_fingerprint": data_fp, "fold_fingerprint": folds.fingerprint}
    store.mark_started(config.task, config.name, facts)
    learner = make_learner(config.learner, config.learner_params(), config.seed, config.n_jobs, config.seeds)
    try:
        result = cross_validate(
            learner,
            features.train,
            Y,
            fold_plan(config, folds, metadata["day"].to_numpy()),
            features.test,
            space,
            validation_fraction=config.validation_fraction,
            checkpoints=store.checkpoints(config.task, config.name),
            progress=f"{config.task}/{config.name} folds",
        )
    except FitFailed as exc:
        raise InputError(f"{config.name}: params.{exc.param}", exc.problem) from None
    manifest = _manifest(config, config_hash, store, features, folds, space, result, started)
    record = store.write_run(config.task, config.name, {"oof": result.oof, "test": result.test}, manifest)
    return RunResult(record, reused=False, cv=result)


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
    holdout = _last_day_result(config, result)
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


def _last_day_result(config: RunConfig, result: CVResult) -> dict:
    """The facts of the split that mimics the private leaderboard (the holdout, or the last_day scheme's fold)."""
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
