"""``mmscel level2``: blend level-1 runs per task and estimate the blend honestly.

Beside the in-sample OOF score the blend reports a nested score (weights
fitted on K-1 folds of the shared fold file, scored on the held-out fold) and
a last-day score (weights fitted on earlier days, scored on the runs'
last-day holdout predictions). A blend whose nested score falls below its
best single run is flagged.

``weights_from: last_day`` fits the weights on the runs' last-day holdout
predictions instead of their OOF: models fitted on earlier days predicting a
later one, as the private set asks. Its nested score (and last-day score) is
then cross-fitted over the fold file's folds within the last day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pydantic

from mmscel import tracking
from mmscel.blend import objective
from mmscel.blend.cis import corrected_scores, opened_peaks
from mmscel.blend.inputs import RunOutputs, check_data, load_runs, target_space
from mmscel.blend.methods import BLEND_METHODS, fit_weights
from mmscel.config import MAX_SEED, PlainName, Tracking, describe_validation_error, read_yaml
from mmscel.config_overrides import apply_overrides, blame_overrides
from mmscel.data.cache_check import dataset_tasks
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.folds import read_fold_labels
from mmscel.progress import log_file, timed
from mmscel.store import BlendRecord, RunStore, array_digest, digest
from mmscel.targets import RowSubset

log = logging.getLogger(__name__)
BLEND_LOG = "blend.log"  # the blend's log lines, in its folder


class CisConfig(pydantic.BaseModel):
    """The Multiome blend's cis correction (see :mod:`mmscel.blend.cis`)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    peaks_per_gene: int = pydantic.Field(3, ge=1, le=50)
    alpha: float = pydantic.Field(300.0, gt=0)  # ridge penalty of each gene's fit
    selection_cells: int = pydantic.Field(8192, ge=100, le=10_000_000)  # cells that rank the peaks
    fit_cells: int = pydantic.Field(32768, ge=100, le=10_000_000)  # cells that fit the weights (bounds the memory)


class BlendConfig(pydantic.BaseModel):
    """A level-2 blend: which runs per task and how to weight them."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: PlainName = "blend"
    method: Annotated[str, pydantic.AfterValidator(BLEND_METHODS.validator())] = "optuna"
    runs: dict[Literal["cite", "multi"], list[str]] = {"cite": ["*"], "multi": ["*"]}
    n_trials: int = pydantic.Field(200, ge=1, le=1_000_000)
    nested_trials: int = pydantic.Field(60, ge=1, le=1_000_000)  # optuna trials per nested fold
    greedy_steps: int = pydantic.Field(25, ge=1, le=100_000)
    seed: int = pydantic.Field(0, ge=0, le=MAX_SEED)
    weights_from: Literal["oof", "last_day"] = "oof"  # the predictions the weights are fitted on
    cis: CisConfig | None = None  # Multiome: correct each gene from the peaks that track its error
    tracking: Tracking | None = pydantic.Field(None, exclude=True)  # log the blend to MLflow; never hashed


def load_blend_config(path: str | Path | Mapping, overrides: Sequence[str] = ()) -> BlendConfig:
    """Read and validate a blend config from a YAML file or a mapping of its keys.

    Parameters
    ----------
    path
        The YAML file, or a mapping of the config's keys.
    overrides
        ``KEY=VALUE`` settings applied over it (see :func:`mmscel.config.apply_overrides`).

    Returns
    -------
    BlendConfig

    Raises
    ------
    InputError
        One line naming the file (``config``, or the ``--set`` setting at fault) and the first problem.
    """
    raw = apply_overrides(dict(path) if isinstance(path, Mapping) else read_yaml(path), overrides)
    path = "config" if isinstance(path, Mapping) else path
    with blame_overrides(overrides):
        try:
            return BlendConfig(**raw)
        except pydantic.ValidationError as exc:
            message = describe_validation_error(exc, raw)
            if "unknown key" in message:
                message = message.split(" (allowed")[0] + f" (allowed: {', '.join(BlendConfig.model_fields)})"
            raise InputError(path, message) from None


def run_level2(
    config: BlendConfig | Mapping | str | Path,
    data_dir="data",
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
) -> BlendRecord:
    """Fit the blend of every task in the config; write it to the store's ``blend/<name>/``.

    Parameters
    ----------
    config
        A blend config, a mapping of its keys, or its YAML file.
    data_dir, cache_dir
        The prepared competition folder (the truth of the training cells) and its cache.
    oof_root
        The store (or its root folder) holding the level-1 runs.

    Returns
    -------
    BlendRecord
        Per task: runs, weights, in-sample, nested and last-day scores.

    Raises
    ------
    InputError
        Bad config, no matching run, runs that do not belong together, or runs made from other data.
    """
    started = time.perf_counter()
    config = config if isinstance(config, BlendConfig) else load_blend_config(config)
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    with log_file(store.blend_dir(config.name) / BLEND_LOG):
        record = _run_level2(config, data_dir, cache_dir, store, started)
        tracking.log_blend(record, store, config.tracking == "mlflow")  # --mlflow / MMSCEL_MLFLOW; a failure only warns
    return record


def _run_level2(config: BlendConfig, data_dir, cache_dir, store: RunStore, started: float) -> BlendRecord:
    tasks, held = {}, _tasks_with_data(config, data_dir, cache_dir)
    for task, patterns in config.runs.items():
        if task not in held:
            continue
        runs = load_runs(store, task, store.select_runs(task, patterns))
        info, test = _blend_task(config, task, runs, data_dir, cache_dir, store)
        tasks[task] = {
            **info,
            "test_file": store.write_blend_test(config.name, task, test),
            "test_shape": list(test.shape),
        }
    skipped = [task for task in config.runs if task not in held]
    manifest = {
        "name": config.name,
        "config": config.model_dump(),
        "tasks": tasks,
        "pooled": _pooled(tasks),
        "wall_seconds": round(time.perf_counter() - started, 2),
        **({"skipped_tasks": skipped} if skipped else {}),
    }
    return store.write_blend(config.name, manifest)


def _tasks_with_data(config: BlendConfig, data_dir, cache_dir) -> list[str]:
    """The config's tasks the dataset holds; each task it lacks is skipped with one logged line.

    A task the dataset holds but no run matches stays an error (in ``select_runs``).
    """
    held = [task for task in dataset_tasks(data_dir, cache_dir) if task in config.runs]
    if not held:
        raise InputError(f"blend {config.name}", f"{data_dir} holds none of its tasks ({', '.join(config.runs)})")
    for task in config.runs:
        if task not in held:
            log.warning(f"blend {config.name}: skipped {task}: {data_dir} holds no {task} data")
    return held


def _blend_task(config: BlendConfig, task: str, runs: list[RunOutputs], data_dir, cache_dir, store: RunStore):
    """The blend of one task: its facts for the manifest, and its test predictions."""
    check_data(task, {r.name: r.record.data_fingerprint for r in runs}, data_dir, cache_dir)
    cis = task == "multi" and config.cis is not None
    train = load(task, "train", data_dir, cache_dir, inputs=cis)  # the peaks only for the cis correction
    if cis:
        train.inputs = opened_peaks(train.inputs)  # all the correction reads, in a quarter of the values' memory
    space = target_space(store, runs[0].record.target_space)
    basis = space.basis
    validated = np.flatnonzero(np.all([np.isfinite(r.oof).all(axis=1) for r in runs], axis=0))
    fold_labels = read_fold_labels(store, runs[0].record.manifest["fold_file"])
    stats, cells = _fit_cells(config, runs, train, basis, validated)
    options = {
        "n_trials": config.n_trials,
        "seed": config.seed,
        "greedy_steps": config.greedy_steps,
        "storage": store.blend_study(config.name, task, _study_key(config, runs, validated)),
        "study_name": f"{config.name}-{task}",
    }
    with timed(f"blend {config.name}/{task}: {config.method} weights of {len(runs)} runs on {len(validated)} cells"):
        weights = fit_weights(config.method, stats, **options)
    singles = {r.name: stats.score(np.eye(len(runs))[i]) for i, r in enumerate(runs)}
    nested = _nested(config, stats, fold_labels[cells])
    earlier = _earlier_weights(config, runs, train, basis, validated)
    last_day = _last_day(runs, train, basis, earlier) if config.weights_from == "oof" else nested
    test = _blend_values([r.test for r in runs], basis, weights)
    best_single = max(singles.values())
    log.info(f"blend {config.name}/{task}: in-sample {stats.score(weights):.4f}, nested {nested:.4f}")
    info = {
        "runs": [r.name for r in runs],
        "weights": [float(w) for w in weights],
        "method": config.method,
        "in_sample": stats.score(weights),
        "nested": nested,
        "last_day": last_day,
        "best_single": {"run": max(singles, key=singles.get), "score": best_single},
        "single_runs": singles,
        "flag_nested_below_best_single": bool(nested < best_single),
        "n_cells": int(len(cells)),
        "target_space": runs[0].record.target_space,
        "fingerprints": {r.name: r.record.fingerprints for r in runs},
    }
    if cis:
        oof = _blend_values([r.oof[validated] for r in runs], basis, weights)
        info["cis"] = _cis(config, store, oof, basis, train, validated, fold_labels[validated])
        info["cis"].update(_cis_last_day(config, runs, train, basis, earlier))
    return info, test


def _blend_values(predictions: list[np.ndarray], basis, weights: np.ndarray) -> np.ndarray:
    if basis is None:
        return objective.blend_dense(predictions, weights)
    return objective.blend_components(predictions, basis, weights)


def _cis(config: BlendConfig, store: RunStore, oof, basis, train, validated: np.ndarray, folds) -> dict:
    """Cross-fit the cis correction on the ``validated`` rows' OOF blend; keep it only if it gains on held-out folds."""
    from mmscel.blend.cis_fit import cross_fit_cis

    settings = config.cis.model_dump()
    with timed(f"blend {config.name}/multi: cis correction, {config.cis.peaks_per_gene} peaks a gene"):
        fitted = cross_fit_cis(
            train.inputs, oof, basis, train.targets, folds, rows=validated, seed=config.seed, **settings
        )
    if fitted is None:
        log.warning(f"blend {config.name}/multi: no cis correction: fewer than two folds to validate it on")
        return {**settings, "applied": False, "why": "fewer than two folds to validate it on"}
    summary = {**settings, "nested_base": fitted.base, "nested_corrected": fitted.corrected, "gain": fitted.gain}
    log.info(f"blend {config.name}/multi: cis correction on held-out folds {fitted.base:.4f} -> {fitted.corrected:.4f}")
    if fitted.gain <= 0:
        log.warning(f"blend {config.name}/multi: cis correction not applied: no gain on held-out folds")
        return {**summary, "applied": False, "why": "no gain on held-out folds"}
    folds = sorted(fitted.by_fold)
    packed = np.stack([fitted.full.to_array()] + [fitted.by_fold[f].to_array() for f in folds])
    file = store.write_blend_array(config.name, "cis", "multi", packed)
    return {**summary, "applied": True, "folds": folds, "file": file}


def _fit_cells(config: BlendConfig, runs: list[RunOutputs], train, basis, validated: np.ndarray):
    """The statistics the weights are fitted on, and their cells' rows: every validated cell's OOF, or the last day's.

    The last day's are the runs' holdout predictions of the last training day, from fits on the earlier days.
    """
    if config.weights_from == "oof":
        return cell_statistics([r.oof[validated] for r in runs], _rows(train.targets, validated), basis), validated
    lacking = [r.name for r in runs if r.last_day is None]
    if lacking:
        problem = "has no last-day holdout (one training day, or folds.scheme last_day)"
        raise InputError(f"blend {config.name}: weights_from", f"run {lacking[0]} {problem}")
    return _last_day_holdout(runs, train, basis)


def _last_day_holdout(runs: list[RunOutputs], train, basis):
    """The runs' holdout statistics on the last training day's cells, and those cells' rows."""
    last_rows = np.flatnonzero(train.metadata["day"].to_numpy() == train.metadata["day"].max())
    return cell_statistics([r.last_day for r in runs], _rows(train.targets, last_rows), basis), last_rows


def _rows(matrix, rows: np.ndarray):
    """``matrix[rows]``; read on demand from a sparse gene matrix, whose copy would take GBs at full size."""
    return matrix[rows] if isinstance(matrix, np.ndarray) else RowSubset(matrix, rows)


def _study_key(config: BlendConfig, runs: list[RunOutputs], validated: np.ndarray) -> str:
    """Digest of everything the Optuna study's scores depend on: a changed input starts a new study."""
    inputs = {
        "seed": config.seed,
        "runs": [
            [r.name] + [r.record.fingerprints[k] for k in ("config_hash", "data_fingerprint", "fold_fingerprint")]
            for r in runs
        ],
        "oof": array_digest(*(r.oof for r in runs)),
        "cells": array_digest(validated),
    }
    if config.weights_from != "oof":  # the OOF-fitted studies keep the keys they had
        inputs["weights_from"] = config.weights_from
    return digest(inputs)


def cell_statistics(predictions: list[np.ndarray], truth, basis) -> objective.CellStatistics:
    """The per-cell statistics level-2 blends with: dense for proteins, in component space for gene-SVD runs.

    Parameters
    ----------
    predictions
        Each run's predictions of the same cells (their prediction space).
    truth
        The scored targets of those cells (dense, or CSR genes).
    basis
        The runs' target basis (None: they predict the scored targets).

    Returns
    -------
    CellStatistics
    """
    if basis is None:
        return objective.dense_statistics(predictions, np.asarray(truth, dtype=np.float64))
    return objective.component_statistics(predictions, truth, basis)


def nested_per_cell(stats: objective.CellStatistics, folds: np.ndarray, method: str, **options) -> np.ndarray | None:
    """Cross-fitted per-cell scores: each fold's cells scored with weights fitted on the other folds' cells.

    Parameters
    ----------
    stats
        The runs' statistics of the validated cells.
    folds
        The fold label of each of those cells (in the order of ``stats``; -1: in no fold, fitted on only).
    method
        A blend method (see :func:`mmscel.blend.methods.fit_weights`).
    **options
        The method's options (``n_trials``, ``seed``, ``greedy_steps``).

    Returns
    -------
    numpy.ndarray or None
        One score per cell (NaN for a cell in no fold); None with fewer than two folds (nothing to nest).
    """
    fold_ids = [f for f in np.unique(folds) if f >= 0]
    if len(fold_ids) < 2:
        return None
    scores = np.full(len(folds), np.nan)
    for k in fold_ids:
        held_out, fit_rows = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        weights = fit_weights(method, stats, fit_rows, **options)
        scores[held_out] = stats.per_cell(weights, held_out)
    return scores


def _nested(config: BlendConfig, stats, fold_labels: np.ndarray) -> float:
    """Weights fitted on K-1 folds, scored on the held-out fold; mean over the cells of ``stats`` in a fold."""
    options = {"n_trials": config.nested_trials, "seed": config.seed, "greedy_steps": config.greedy_steps}
    scores = nested_per_cell(stats, fold_labels, config.method, **options)
    return float("nan") if scores is None else float(np.nanmean(scores))  # last_day scheme: one fold, nothing to nest


def _last_day(runs: list[RunOutputs], train, basis, earlier) -> float | None:
    """The weights fitted on the OOF of earlier days (``earlier``), scored on the runs' last-day holdout predictions."""
    if earlier is None:
        return None
    holdout, _ = _last_day_holdout(runs, train, basis)
    return holdout.score(earlier[0])


def _earlier_weights(config: BlendConfig, runs: list[RunOutputs], train, basis, validated: np.ndarray):
    """Weights fitted on the OOF of the days before the last, and those cells' rows.

    None when the weights are fitted on the last day already or a run has no last-day holdout.
    """
    if config.weights_from != "oof" or any(r.last_day is None for r in runs):
        return None
    day = train.metadata["day"].to_numpy()
    earlier = validated[day[validated] != day.max()]
    fit_stats = cell_statistics([r.oof[earlier] for r in runs], _rows(train.targets, earlier), basis)
    options = {"n_trials": config.nested_trials, "seed": config.seed, "greedy_steps": config.greedy_steps}
    return fit_weights(config.method, fit_stats, **options), earlier


def _cis_last_day(config: BlendConfig, runs: list[RunOutputs], train, basis, earlier) -> dict:
    """The last-day score of the blend weighted on earlier days (``earlier``), without and with a correction
    fitted on them."""
    from mmscel.blend.cis_fit import fit_blend_cis

    if earlier is None:
        return {}
    weights, rows = earlier
    oof = _blend_values([r.oof[rows] for r in runs], basis, weights)
    options = {"seed": config.seed, **config.cis.model_dump()}
    cis = fit_blend_cis(train.inputs, oof, basis, train.targets, rows=rows, **options)
    last = np.flatnonzero(train.metadata["day"].to_numpy() == train.metadata["day"].max())
    holdout = _blend_values([r.last_day for r in runs], basis, weights)
    scores = [corrected_scores(each, train.inputs, holdout, basis, train.targets, last).mean() for each in (None, cis)]
    return {"last_day_base": float(scores[0]), "last_day_corrected": float(scores[1])}


def _pooled(tasks: dict) -> dict:
    pooled = {}
    for key in ("in_sample", "nested", "last_day"):
        values = [(t[key], t["n_cells"]) for t in tasks.values() if t[key] is not None and np.isfinite(t[key])]
        if values:
            pooled[key] = float(sum(v * n for v, n in values) / sum(n for _, n in values))
    return pooled
