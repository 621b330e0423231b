"""LightGBM: one booster per output column, all sharing one binned Dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pydantic

from mmscel.learners.base import BaseLearner, FitData, LearnerParams, TargetBasis, as_float32

INDEX_FILE = "lgbm.json"


class LGBMParams(LearnerParams):
    """Parameters of :class:`LGBMLearner`."""

    n_estimators: int = pydantic.Field(300, ge=1)
    learning_rate: float = pydantic.Field(0.05, gt=0)
    num_leaves: int = pydantic.Field(31, ge=2)
    min_data_in_leaf: int = pydantic.Field(20, ge=1)
    feature_fraction: float = pydantic.Field(0.8, gt=0, le=1)
    bagging_fraction: float = pydantic.Field(0.8, gt=0, le=1)
    bagging_freq: int = pydantic.Field(1, ge=0)
    lambda_l2: float = pydantic.Field(1.0, ge=0)
    max_bin: int = pydantic.Field(255, ge=2)
    early_stopping_rounds: int = pydantic.Field(30, ge=0)  # 0 disables early stopping


class LGBMLearner(BaseLearner):
    """Gradient-boosted trees (LightGBM), one booster per output column.

    The features are binned once per fit; each output only swaps the label of
    the shared training (and validation) Dataset. Models are stored as
    LightGBM text files ``lgbm_<j>.txt`` (truncated at the best iteration)
    with an index ``lgbm.json``.
    """

    name = "lgbm"
    library = "lightgbm"
    quick_params = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15, "early_stopping_rounds": 10}
    Params = LGBMParams
    uses_validation = True

    def booster_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict (Dataset and training share it, so nothing is re-binned)."""
        return {
            "objective": "regression",
            "metric": "l2",
            **self.params.library_params(),
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs,
            "verbose": -1,
        }

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> LGBMLearner:
        """Fit one booster per output column on a Dataset binned once."""
        params = self.booster_params()
        labels = _columns(train.Y)
        # Dataset and train() get the same params: lgb.train silently re-bins a
        # Dataset (free_raw_data=False) whose binning params differ from its own.
        train_set = lgb.Dataset(as_float32(train.X), label=labels[0], params=params, free_raw_data=False).construct()
        valid_set, valid_labels = None, None
        if valid is not None:
            valid_labels = _columns(valid.Y)
            valid_set = lgb.Dataset(
                as_float32(valid.X), label=valid_labels[0], reference=train_set, params=params, free_raw_data=False
            ).construct()
        self.boosters_: list[lgb.Booster] = []
        self.best_iterations = []
        for j in range(len(labels)):
            train_set.set_label(labels[j])
            if valid_set is not None:
                valid_set.set_label(valid_labels[j])
            booster = self._train_one(params, train_set, valid_set)
            self.boosters_.append(booster)
            self.best_iterations.append(booster.best_iteration or booster.current_iteration())
        return self

    def _train_one(self, params: dict[str, Any], train_set: lgb.Dataset, valid_set: lgb.Dataset | None) -> lgb.Booster:
        callbacks = []
        if valid_set is not None and self.params.early_stopping_rounds > 0:
            callbacks.append(lgb.early_stopping(self.params.early_stopping_rounds, verbose=False))
        return lgb.train(
            params,
            train_set,
            num_boost_round=self.params.n_estimators,
            valid_sets=[valid_set] if valid_set is not None else None,
            valid_names=["valid"] if valid_set is not None else None,
            callbacks=callbacks,
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every booster at its best iteration."""
        X = as_float32(X)
        columns = [b.predict(X, num_iteration=n) for b, n in zip(self.boosters_, self.best_iterations, strict=True)]
        return np.column_stack(columns).astype(np.float32)

    def save(self, folder: Path) -> list[Path]:
        """Write each booster as LightGBM text and the index ``lgbm.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for j, (booster, best) in enumerate(zip(self.boosters_, self.best_iterations, strict=True)):
            path = folder / f"lgbm_{j}.txt"
            booster.save_model(path, num_iteration=best)
            files.append(path)
        index = folder / INDEX_FILE
        index.write_text(json.dumps({"models": [f.name for f in files], "best_iterations": self.best_iterations}))
        return [*files, index]

    def load(self, folder: Path) -> LGBMLearner:
        """Read the boosters written by :meth:`save`."""
        index = json.loads((folder / INDEX_FILE).read_text())
        self.boosters_ = [lgb.Booster(model_file=folder / name) for name in index["models"]]
        self.best_iterations = [int(n) for n in index["best_iterations"]]
        return self


def _columns(Y) -> np.ndarray:
    """Targets as (outputs x rows) float32, so each output's label is contiguous; 1-D is one output."""
    Y = np.asarray(Y, dtype=np.float32)
    return np.ascontiguousarray(Y.reshape(len(Y), -1).T)
