"""XGBoost: one multi-output model (histogram trees) for all output columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import xgboost as xgb

from mmscel.learners.base import BaseLearner, FitData, LearnerParams, TargetBasis, as_float32, targets_2d

MODEL_FILE = "xgb.ubj"
INDEX_FILE = "xgb.json"


class XGBParams(LearnerParams):
    """Parameters of :class:`XGBLearner`."""

    n_estimators: int = pydantic.Field(300, ge=1)
    learning_rate: float = pydantic.Field(0.05, gt=0)
    max_depth: int = pydantic.Field(6, ge=1)
    min_child_weight: float = pydantic.Field(1.0, ge=0)
    subsample: float = pydantic.Field(0.8, gt=0, le=1)
    colsample_bytree: float = pydantic.Field(0.8, gt=0, le=1)
    reg_lambda: float = pydantic.Field(1.0, ge=0)
    max_bin: int = pydantic.Field(256, ge=2)
    early_stopping_rounds: int = pydantic.Field(30, ge=0)  # 0 disables early stopping
    # one tree per output and round, or one vector-leaf tree for all outputs per round
    multi_strategy: Literal["one_output_per_tree", "multi_output_tree"] = "one_output_per_tree"


class XGBLearner(BaseLearner):
    """Gradient-boosted trees (XGBoost ``hist``), one model over all outputs.

    The model is stored as XGBoost UBJSON ``xgb.ubj`` (all rounds) with an
    index ``xgb.json`` holding the best iteration used for prediction.
    """

    name = "xgb"
    library = "xgboost"
    quick_params = {
        "n_estimators": 40,
        "learning_rate": 0.1,
        "max_depth": 4,
        "max_bin": 64,
        "early_stopping_rounds": 10,
    }
    Params = XGBParams
    uses_validation = True

    def booster_params(self) -> dict[str, Any]:
        """The parameter dict handed to :func:`xgboost.train`."""
        return {
            "objective": "reg:squarederror",
            "eval_metric": "rmse",
            "tree_method": "hist",
            **self.params.library_params(),
            "seed": self.seed,
            "nthread": self.n_jobs,
            "verbosity": 0,
        }

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> XGBLearner:
        """Fit one XGBoost model over all outputs, early-stopping on ``valid``."""
        dtrain = xgb.QuantileDMatrix(as_float32(train.X), label=targets_2d(train.Y), max_bin=self.params.max_bin)
        evals, stopping = [], None
        if valid is not None:
            dvalid = xgb.QuantileDMatrix(
                as_float32(valid.X), label=targets_2d(valid.Y), ref=dtrain, max_bin=self.params.max_bin
            )
            evals = [(dvalid, "valid")]
            stopping = self.params.early_stopping_rounds or None
        self.booster_ = xgb.train(
            self.booster_params(),
            dtrain,
            num_boost_round=self.params.n_estimators,
            evals=evals,
            early_stopping_rounds=stopping,
            verbose_eval=False,
        )
        # best_iteration is 0-based and only set by early stopping; keep a round count
        best = self.booster_.best_iteration + 1 if stopping else self.booster_.num_boosted_rounds()
        self.best_iterations = [int(best)]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions up to the best iteration."""
        X = as_float32(X)
        pred = self.booster_.inplace_predict(X, iteration_range=(0, self.best_iterations[0]))
        return np.asarray(pred, dtype=np.float32).reshape(len(X), -1)

    def save(self, folder: Path) -> list[Path]:
        """Write the model as UBJSON ``xgb.ubj`` and the index ``xgb.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        model, index = folder / MODEL_FILE, folder / INDEX_FILE
        self.booster_.save_model(str(model))
        index.write_text(json.dumps({"model": MODEL_FILE, "best_iterations": self.best_iterations}))
        return [model, index]

    def load(self, folder: Path) -> XGBLearner:
        """Read the model written by :meth:`save`."""
        index = json.loads((folder / INDEX_FILE).read_text())
        self.booster_ = xgb.Booster(params={"nthread": self.n_jobs})
        self.booster_.load_model(str(folder / index["model"]))
        self.best_iterations = [int(n) for n in index["best_iterations"]]
        return self
