"""XGBoost: one multi-output model (histogram trees) for all output columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pydantic
import xgboost as xgb

from mmscel.learners.base import FitData, TargetBasis, as_float32, targets_2d
from mmscel.learners.device import Device, check_gpu_setting, xgboost_cuda_problem
from mmscel.learners.gbdt import Bins, Fraction, GBDTLearner, GBDTParams, Patience, Penalty
from mmscel.progress import steps

MODEL_FILE = "xgb.ubj"
INDEX_FILE = "xgb.json"


class XGBParams(GBDTParams):
    """Parameters of :class:`XGBLearner`, after the boosting fields of :class:`~mmscel.learners.gbdt.GBDTParams`.

    Parameters
    ----------
    max_depth
        Depth of each tree at most.
    min_child_weight
        Hessian sum a child node needs at least (rows, for the squared error).
    subsample, colsample_bytree
        Shares of the rows and of the features each tree samples.
    reg_lambda
        L2 penalty on leaf weights.
    max_bin
        Quantile bins per feature.
    early_stopping_rounds
        Rounds without a better validation RMSE before stopping (0: never stop early).
    multi_strategy
        ``one_output_per_tree``: a tree per output and round; ``multi_output_tree``: one
        vector-leaf tree for all outputs per round.
    device
        ``cpu``, or ``cuda``: XGBoost's ``device="cuda"`` (still ``hist``). Part of the run's hash,
        as GPU fits differ from CPU fits; ``multi_output_tree`` fits on a GPU from XGBoost 3.2 on.
    """

    max_depth: int = pydantic.Field(6, ge=1, le=32)  # a deeper tree needs more memory than any machine has
    min_child_weight: float = pydantic.Field(1.0, ge=0)
    subsample: Fraction = 0.8
    colsample_bytree: Fraction = 0.8
    reg_lambda: Penalty = 1.0
    max_bin: Bins = 256
    early_stopping_rounds: Patience = 30
    multi_strategy: Literal["one_output_per_tree", "multi_output_tree"] = "one_output_per_tree"
    device: Device = "cpu"

    own_fields: ClassVar[frozenset[str]] = GBDTParams.own_fields | {"device"}

    @pydantic.field_validator("device")
    @classmethod
    def _gpu_fits_the_strategy(cls, device: str, info: pydantic.ValidationInfo) -> str:
        return check_gpu_setting(device, info.data, "multi_strategy", "multi_output_tree", "xgboost", "3.2")

    @classmethod
    def cuda_problem(cls) -> str | None:
        """Why XGBoost cannot fit on a CUDA GPU here (None: it can)."""
        return xgboost_cuda_problem()


class XGBLearner(GBDTLearner):
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
    tune_space = {
        "params.learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "params.max_depth": {"type": "int", "low": 3, "high": 10},
        "params.min_child_weight": {"type": "float", "low": 0.1, "high": 20.0, "log": True},
        "params.subsample": {"type": "float", "low": 0.5, "high": 1.0},
        "params.colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},
        "params.reg_lambda": {"type": "float", "low": 0.001, "high": 30.0, "log": True},
    }

    def booster_params(self, rows: int | None = None) -> dict[str, Any]:
        """The parameters of :func:`xgboost.train` for ``rows`` rows; ``device: cuda`` adds ``device="cuda"``."""
        params = {
            "objective": "reg:squarederror",
            "eval_metric": "rmse",
            "tree_method": "hist",
            **self.params.library_params(),
            "seed": self.seed,
            "nthread": self.threads(rows),
            "verbosity": 0,
        }
        if self.params.device == "cuda":
            params["device"] = "cuda"
        return params

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> XGBLearner:
        """Fit one XGBoost model over all outputs, early-stopping on ``valid``."""
        threads = self.threads(len(train.X))
        dtrain = xgb.QuantileDMatrix(
            as_float32(train.X), label=targets_2d(train.Y), max_bin=self.params.max_bin, nthread=threads
        )
        evals, stopping = [], None
        if valid is not None:
            dvalid = xgb.QuantileDMatrix(
                as_float32(valid.X), label=targets_2d(valid.Y), ref=dtrain, max_bin=self.params.max_bin, nthread=threads
            )
            evals = [(dvalid, "valid")]
            stopping = self.params.early_stopping_rounds or None
        with steps("xgb rounds", self.params.n_estimators) as advance:
            self.booster_ = xgb.train(
                self.booster_params(len(train.X)),
                dtrain,
                num_boost_round=self.params.n_estimators,
                evals=evals,
                early_stopping_rounds=stopping,
                verbose_eval=False,
                callbacks=[_Rounds(advance)],
            )
        # best_iteration is 0-based and only set by early stopping; keep a round count
        best = self.booster_.best_iteration + 1 if stopping else self.booster_.num_boosted_rounds()
        self.best_iterations = [int(best)]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions up to the best iteration."""
        X = as_float32(X)
        self.booster_.set_param({"nthread": self.threads(len(X))})
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


class _Rounds(xgb.callback.TrainingCallback):
    """Counts the boosting rounds for the progress display."""

    def __init__(self, advance):
        super().__init__()
        self.advance = advance

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        """One more round; never asks to stop."""
        self.advance()
        return False
