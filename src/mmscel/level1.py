"""``mmscel level1``: fit a base learner on shared folds and write OOF and test predictions.

A run writes ``oof/<task>/<run>/``: ``oof.npy`` (train rows x target dims;
Multiome in target-SVD component space; rows a scheme never validates are
NaN), ``test.npy``, ``manifest.json`` and per-fold checkpoints holding the
fold's predictions and native model files. A run killed at any moment
resumes at its first unfinished fold and ends with identical results: every
fold is fitted with a seed derived from the run's seed and the fold.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmscel import folds as folds_module
from mmscel.config import RunConfig, load_run_config
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.features import FeatureSet, build_features
from mmscel.fsutil import replace_dir
from mmscel.learners import FitData, TargetBasis, learner_class
from mmscel.learners.bag import SeedBag
from mmscel.metrics import pearson_per_row, standardize_rows
from mmscel.progress import track
from mmscel.store import (
    FoldCheckpoint,
    data_fingerprint,
    digest,
    library_versions,
    read_manifest,
    save_array,
    write_manifest,
)

LAST_DAY = "last_day"
ROW_CHUNK = 2048  # rows of the scored targets handled at a time
REFIT = "refit"


@dataclass
class RunResult:
    """Where a run lives and what its manifest says."""

    run_dir: Path
    manifest: dict
    reused: bool


@dataclass
class Targets:
    """The targets of one task as the runner sees them.

    ``fit`` is what learners fit (proteins, standardised proteins or Multiome
    coefficients); ``scored`` is what the metric compares against (dense
    proteins, or the CSR Multiome genes); ``basis`` maps learner outputs of
    Multiome runs onto the genes.
    """

    fit: np.ndarray
    scored: np.ndarray | sp.csr_matrix
    basis: TargetBasis | None
    space: dict
    fitted_columns: int | None = None  # Multiome: learners fit the leading columns only

    def learner_targets(self, rows: np.ndarray) -> np.ndarray:
        """The columns of ``fit`` a learner is trained on, for ``rows``."""
        return self.fit[rows] if self.fitted_columns is None else self.fit[rows, : self.fitted_columns]

    def learner_basis(self) -> TargetBasis | None:
        """The basis restricted to the components learners fit."""
        if self.basis is None or self.fitted_columns is None:
            return self.basis
        return TargetBasis(self.basis.components[: self.fitted_columns], self.basis.mean)

    def pad(self, predictions: np.ndarray) -> np.ndarray:
        """Learner outputs widened to the full target space (unfitted components are 0)."""
        if self.fitted_columns is None or predictions.shape[1] == self.fit.shape[1]:
            return predictions
        out = np.zeros((len(predictions), self.fit.shape[1]), dtype=np.float32)
        out[:, : predictions.shape[1]] = predictions
        return out


def run_level1(
    config: RunConfig | str | Path, data_dir="data", cache_dir=None, oof_root="oof", overwrite: bool = False
) -> RunResult:
    """Run (or resume, or reuse) the level-1 run described by ``config``."""
    started = time.perf_counter()
    config = config if isinstance(config, RunConfig) else load_run_config(config)
    oof_root = Path(oof_root)
    config_hash = digest(config.hashed())
    run_dir = oof_root / config.task / config.name
    existing = _existing_run(
        run_dir, config, config_hash, data_fingerprint(config.task, data_dir, cache_dir), overwrite
    )
    if existing is not None:
        return RunResult(run_dir, existing, reused=True)
    features = build_features(config.task, config.feature_config(), data_dir, cache_dir, oof_root, seed=config.seed)
    train = load(config.task, "train", data_dir, cache_dir, check=False, inputs=False)
    folds = folds_module.load_or_create(
        oof_root,
        config.task,
        config.folds.scheme,
        train.metadata,
        features.data_fingerprint,
        config.folds.n_splits,
        config.folds.seed,
    )
    if not np.array_equal(folds.cell_ids, features.train_ids.astype(str)):
        raise InputError(
            folds_module.fold_path(oof_root, config.task, config.folds.scheme),
            "cells are not in the order of the features",
        )
    targets = _targets(config, train, features)
    write_manifest(
        run_dir / "run.json",
        {
            "config_hash": config_hash,
            "data_fingerprint": features.data_fingerprint,
            "fold_fingerprint": folds.fingerprint,
        },
    )
    plan = _fold_plan(config, folds, train.metadata["day"].to_numpy())
    results = {}
    for name, (fit_rows, valid_rows) in track(
        list(plan.items()), f"{config.task}/{config.name} folds", total=len(plan)
    ):
        results[name] = _run_fold(config, run_dir, name, features, targets, fit_rows, valid_rows)
    manifest = _finish(config, config_hash, run_dir, features, folds, targets, plan, results, started)
    return RunResult(run_dir, manifest, reused=False)


def _existing_run(run_dir: Path, config: RunConfig, config_hash: str, data_fp: str, overwrite: bool) -> dict | None:
    """The manifest of a finished identical run; refuse a different config or other data under the same name."""
    manifest = read_manifest(run_dir / "manifest.json")
    started = read_manifest(run_dir / "run.json")
    recorded = manifest or started or {}
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
            raise InputError(run_dir, f"run '{config.name}' {problem}; rename the run or pass --overwrite")
        shutil.rmtree(run_dir)
        return None
    if manifest is not None and manifest.get("completed"):
        return manifest
    return None  # same config, unfinished: resume from its checkpoints


def _targets(config: RunConfig, train, features: FeatureSet) -> Targets:
    if config.task == "multi":
        if config.targets.standardize_cells:
            raise InputError(
                f"{config.name}: targets",
                "standardize_cells applies to CITEseq; Multiome runs fit the target-SVD components",
            )
        space = {
            "kind": "components",
            "n_components": int(features.target_basis.components.shape[0]),
            "features": features.fingerprint,
            "components_file": f"features/{features.folder.name}/target_components.npy",  # relative to the oof root
            "n_genes": int(features.target_basis.components.shape[1]),
        }
        fitted = features.train_target_coefficients.shape[1]
        if config.targets.space == "svd":  # fit only the leading components; the rest are predicted as 0
            fitted = min(fitted, config.targets.components)
            space["fitted_components"] = fitted
        return Targets(features.train_target_coefficients, train.targets, features.target_basis, space, fitted)
    fit = np.asarray(train.targets, dtype=np.float32)
    if config.targets.standardize_cells:
        fit = standardize_rows(fit).astype(np.float32)
    space = {"kind": "proteins", "n_targets": int(fit.shape[1]), "standardize_cells": config.targets.standardize_cells}
    if config.targets.space == "svd":
        space.update(kind="protein_svd", fit_components=config.targets.components, output="proteins")
    return Targets(fit, np.asarray(train.targets, dtype=np.float32), None, space)


def _fold_plan(config: RunConfig, folds, day: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (train rows, validation rows) pairs: the scheme's folds, the last-day holdout, a refit."""
    plan = {str(k): folds.split(k) for k in folds.fold_ids}
    if config.folds.scheme != "last_day" and len(np.unique(day)) > 1:  # imported data may hold one day
        last = day == day.max()
        plan[LAST_DAY] = (np.flatnonzero(~last), np.flatnonzero(last))
    if config.test_predictions == "refit":
        plan[REFIT] = (np.arange(len(day)), np.zeros(0, dtype=np.int64))
    return plan


def _run_fold(
    config: RunConfig, run_dir: Path, name: str, features: FeatureSet, targets: Targets, train_rows, valid_rows
) -> dict:
    checkpoint = FoldCheckpoint(run_dir, name)
    if checkpoint.done:
        arrays, info = checkpoint.load(("valid", "test"))
        return {**info, **arrays}
    fold_started = time.perf_counter()
    seed = config.seed + _fold_seed(name)
    cls = learner_class(config.learner)
    if config.seeds > 1:
        learner = SeedBag(cls, config.learner_params(), config.seeds, seed=seed, n_jobs=config.n_jobs)
    else:
        learner = cls(config.learner_params(), seed=seed, n_jobs=config.n_jobs)
    fit_rows, stop_rows = _early_stopping_split(train_rows, config.validation_fraction, seed, cls.uses_validation)
    projection = (
        ProteinSVD.fit(targets.fit[fit_rows], config.targets.components)
        if config.targets.space == "svd" and config.task == "cite"
        else None
    )
    fit_data = [_fit_data(features, targets, rows, projection, cls.uses_full_targets) for rows in (fit_rows, stop_rows)]
    learner.fit(*fit_data, targets.learner_basis())
    del fit_data
    model_dir = checkpoint.model_dir()
    staging = model_dir.with_name(f".{model_dir.name}.{os.getpid()}.tmp")  # written whole, then moved into place
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    learner.save(staging)
    if projection is not None:
        projection.save(staging)
    replace_dir(staging, model_dir)
    predict = (
        (lambda X: projection.inverse(learner.predict(X)))
        if projection is not None
        else (lambda X: targets.pad(learner.predict(X)))
    )
    valid = predict(features.train[valid_rows]) if len(valid_rows) else np.zeros((0, targets.fit.shape[1]), np.float32)
    predicts_test = name == REFIT or (name != LAST_DAY and config.test_predictions != "refit")  # else unused
    test = predict(features.test) if predicts_test else np.zeros((0, targets.fit.shape[1]), np.float32)
    score = float(np.mean(score_rows(valid, targets, valid_rows))) if len(valid_rows) else None
    floor = mean_profile_score(targets, train_rows, valid_rows) if len(valid_rows) else None
    info = {
        "fold": name,
        "n_fit": int(len(fit_rows)),
        "n_early_stopping": int(len(stop_rows)),
        "n_valid": int(len(valid_rows)),
        "score": score,
        "mean_profile": floor,
        "seed": seed,
        "seconds": round(time.perf_counter() - fold_started, 3),
        **learner.fit_info(),
    }
    checkpoint.save({"valid": valid.astype(np.float32), "test": test.astype(np.float32)}, info)
    return {**info, "valid": valid, "test": test}


def _fold_seed(name: str) -> int:
    return {LAST_DAY: 1000, REFIT: 2000}.get(name, int(name) if name.isdigit() else 0)


def _early_stopping_split(rows: np.ndarray, fraction: float, seed: int, wanted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cut the early-stopping part from inside the training rows (never from the predicted fold)."""
    if not wanted or len(rows) < 20:
        return rows, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    stop = np.zeros(len(rows), dtype=bool)
    stop[rng.choice(len(rows), size=max(1, int(round(fraction * len(rows)))), replace=False)] = True
    return rows[~stop], rows[stop]


def _fit_data(features: FeatureSet, targets: Targets, rows: np.ndarray, projection, with_full: bool) -> FitData | None:
    if len(rows) == 0:
        return None
    fit = targets.learner_targets(rows) if projection is None else projection.transform(targets.fit[rows])
    full = targets.scored[rows] if targets.basis is not None and with_full else None
    return FitData(features.train[rows], fit, full)


class ProteinSVD:
    """A compressed protein space for GBDTs: centred SVD of the training fold's proteins."""

    def __init__(self, mean: np.ndarray, components: np.ndarray):
        self.mean, self.components = mean, components

    @classmethod
    def fit(cls, values: np.ndarray, n_components: int) -> ProteinSVD:
        """Centred SVD of the proteins, keeping ``n_components`` directions."""
        mean = values.mean(axis=0)
        _, _, vt = np.linalg.svd(values - mean, full_matrices=False)
        return cls(mean.astype(np.float32), vt[: min(n_components, vt.shape[0])].astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Proteins to SVD coefficients."""
        return ((values - self.mean) @ self.components.T).astype(np.float32)

    def inverse(self, coefficients: np.ndarray) -> np.ndarray:
        """SVD coefficients back to proteins."""
        return (coefficients @ self.components + self.mean).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write the mean and components beside the model (``.npy``)."""
        save_array(folder / "protein_svd_mean.npy", self.mean)
        save_array(folder / "protein_svd_components.npy", self.components)


def score_rows(predictions: np.ndarray, targets: Targets, rows: np.ndarray, chunk: int = ROW_CHUNK) -> np.ndarray:
    """Per-cell Pearson of predictions (learner space) against the scored targets of ``rows``.

    Multiome predictions are reconstructed onto all genes chunk by chunk, so
    the full-gene metric never needs the full dense matrix.
    """
    if targets.basis is None:
        return pearson_per_row(targets.scored[rows], predictions)
    scores = np.empty(len(rows))
    for start, truth in _row_chunks(targets.scored, rows, chunk, dense=True):
        scores[start : start + len(truth)] = pearson_per_row(
            truth, targets.basis.reconstruct(predictions[start : start + len(truth)])
        )
    return scores


def mean_profile_score(targets: Targets, train_rows: np.ndarray, valid_rows: np.ndarray) -> float:
    """The floor on a fold: the training rows' mean target profile scored on the validation rows."""
    total = np.zeros(targets.scored.shape[1])
    for _, part in _row_chunks(targets.scored, train_rows):
        total += np.asarray(part.sum(axis=0), dtype=np.float64).ravel()
    mean = total / len(train_rows)
    scores = [
        pearson_per_row(truth, np.broadcast_to(mean, truth.shape))
        for _, truth in _row_chunks(targets.scored, valid_rows, dense=True)
    ]
    return float(np.concatenate(scores).mean())


def _row_chunks(values: np.ndarray | sp.csr_matrix, rows: np.ndarray, chunk: int = ROW_CHUNK, dense: bool = False):
    """(offset, values[rows[offset : offset + chunk]]) in turn, densified if asked.

    Indexing all the rows of a large CSR at once copies them (GBs for the full
    Multiome targets); a chunk at a time keeps the copy small.
    """
    for start in range(0, len(rows), chunk):
        part = values[rows[start : start + chunk]]
        yield start, (part.toarray() if dense and sp.issparse(part) else part)


def _finish(config, config_hash, run_dir, features, folds, targets, plan, results, started) -> dict:
    n_train, width = targets.fit.shape[0], _width(results)
    oof = np.full((n_train, width), np.nan, dtype=np.float32)
    cv_scores = np.full(n_train, np.nan)
    for name in map(str, folds.fold_ids):
        rows = plan[name][1]
        oof[rows] = results[name]["valid"]
        cv_scores[rows] = score_rows(results[name]["valid"], targets, rows)
    last_name = (
        LAST_DAY if LAST_DAY in results else (str(folds.fold_ids[0]) if config.folds.scheme == "last_day" else None)
    )
    last_day = results[last_name] if last_name else {"score": None, "mean_profile": None}
    test_folds = [REFIT] if REFIT in results else [str(k) for k in folds.fold_ids]
    test = np.mean([results[name]["test"] for name in test_folds], axis=0).astype(np.float32)
    save_array(run_dir / "oof.npy", oof)
    save_array(run_dir / "test.npy", test)
    manifest = {
        "run": config.name,
        "task": config.task,
        "learner": config.learner,
        "config": config.model_dump(),
        "config_hash": config_hash,
        "data_fingerprint": features.data_fingerprint,
        "feature_fingerprint": features.fingerprint,
        "fold_fingerprint": folds.fingerprint,
        "fold_scheme": config.folds.scheme,
        "fold_file": str(
            folds_module.fold_path(Path(run_dir).parents[1], config.task, config.folds.scheme).relative_to(
                Path(run_dir).parents[1]
            )
        ),
        "target_space": targets.space,
        "shapes": {"oof": list(oof.shape), "test": list(test.shape)},
        "validated_rows": int(np.isfinite(cv_scores).sum()),
        "cv": float(np.nanmean(cv_scores)),
        "cv_mean_profile": _weighted_floor(results, plan, folds),
        "last_day": last_day["score"],
        "last_day_mean_profile": last_day["mean_profile"],
        "folds": {
            name: {k: v for k, v in result.items() if k not in ("valid", "test")} for name, result in results.items()
        },
        "test_predictions": config.test_predictions,
        "seed": config.seed,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "libraries": library_versions(),
        "completed": True,
    }
    write_manifest(run_dir / "manifest.json", manifest)
    return manifest


def _weighted_floor(results: dict, plan: dict, folds) -> float:
    names = [str(k) for k in folds.fold_ids]
    sizes = np.array([len(plan[name][1]) for name in names], dtype=np.float64)
    return float(np.dot([results[name]["mean_profile"] for name in names], sizes) / sizes.sum())


def _width(results: dict) -> int:
    for result in results.values():
        for key in ("valid", "test"):
            if result[key].ndim == 2 and result[key].shape[1]:
                return result[key].shape[1]
    raise RuntimeError("no fold produced predictions")


def list_runs(oof_root="oof") -> list[dict]:
    """Manifests of all finished runs under ``oof_root``, best CV first within each task."""
    runs = []
    for path in sorted(Path(oof_root).glob("*/*/manifest.json")):
        manifest = read_manifest(path)
        if manifest and manifest.get("completed") and "learner" in manifest:
            runs.append(manifest)
    return sorted(runs, key=lambda m: (m["task"], -_sortable(m.get("cv"))))


def _sortable(score) -> float:
    """A score for sorting: missing or NaN scores rank last."""
    return float(score) if score is not None and np.isfinite(score) else -np.inf
