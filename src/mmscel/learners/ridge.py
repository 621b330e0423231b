"""Ridge regression (scikit-learn), multi-output natively."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydantic
from sklearn.linear_model import Ridge

from mmscel.learners.base import BaseLearner, FitData, LearnerParams, TargetBasis, as_float32


class RidgeParams(LearnerParams):
    """Parameters of :class:`RidgeLearner`.

    Parameters
    ----------
    alpha
        Strength of the L2 penalty on the coefficients.
    fit_intercept
        Whether to fit an intercept per output.
    standardize
        Scale features to unit variance first (SVD components differ in scale).
    """

    alpha: float = pydantic.Field(10.0, gt=0)
    fit_intercept: bool = True
    standardize: bool = True


class RidgeLearner(BaseLearner):
    """L2-regularised linear regression on all outputs at once.

    The fitted model is stored as ``ridge.npz`` (coefficients, intercept and
    feature scaling; plain arrays, loaded with ``allow_pickle=False``).
    """

    name = "ridge"
    library = "scikit-learn"
    quick_params = {"alpha": 10.0}
    tune_space = {"params.alpha": {"type": "float", "low": 0.01, "high": 10_000.0, "log": True}}
    Params = RidgeParams

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> RidgeLearner:
        """Fit one multi-output Ridge on standardised features."""
        X = as_float32(train.X)
        self.scale_ = X.std(axis=0) if self.params.standardize else np.ones(X.shape[1], np.float32)
        self.scale_[self.scale_ == 0] = 1.0
        p = self.params
        # X / scale_ is a private copy, so scikit-learn may centre it in place (copy_X=False)
        model = Ridge(alpha=p.alpha, fit_intercept=p.fit_intercept, copy_X=False, random_state=self.seed)
        model.fit(X / self.scale_, np.asarray(train.Y, dtype=np.float32))
        self.coef_ = np.asarray(model.coef_, dtype=np.float32).reshape(-1, X.shape[1])
        self.intercept_ = np.broadcast_to(np.asarray(model.intercept_, dtype=np.float32), (self.coef_.shape[0],)).copy()
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions in the learner's output space."""
        # scaling folded into the (small) coefficients instead of a scaled copy of X
        return as_float32(X) @ (self.coef_ / self.scale_).T + self.intercept_

    def save(self, folder: Path) -> list[Path]:
        """Write coefficients and scaling as ``ridge.npz`` (no pickle)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "ridge.npz"
        np.savez(path, coef=self.coef_, intercept=self.intercept_, scale=self.scale_)
        (folder / "ridge.json").write_text(json.dumps(self.params.model_dump()))
        return [path, folder / "ridge.json"]

    def load(self, folder: Path) -> RidgeLearner:
        """Read a model written by :meth:`save`."""
        with np.load(folder / "ridge.npz", allow_pickle=False) as saved:
            self.coef_, self.intercept_, self.scale_ = saved["coef"], saved["intercept"], saved["scale"]
        return self
