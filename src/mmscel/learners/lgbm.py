"""LightGBM: one booster per output column, all sharing one binned Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pydantic

from mmscel.learners.base import FitData, TargetBasis, as_float32
from mmscel.learners.gbdt import Bins, Fraction, GBDTLearner, GBDTParams, Patience, Penalty, load_models, save_models
from mmscel.progress import steps, track


class LGBMParams(GBDTParams):
    """Parameters of :class:`LGBMLearner`, after the boosting fields of :class:`~mmscel.learners.gbdt.GBDTParams`.

    Parameters
    ----------
    num_leaves
        Leaves per tree at most.
    min_data_in_leaf
        Training rows a leaf needs at least.
    feature_fraction, bagging_fraction
        Shares of the features and of the rows each tree samples.
    bagging_freq
        Rounds between row resamplings (0: no row sampling).
    lambda_l2
        L2 penalty on leaf values.
    max_bin
        Histogram bins per feature.
    early_stopping_rounds
        Rounds without a better validation l2 before stopping (0: never stop early).
    """

    num_leaves: int = pydantic.Field(31, ge=2, le=131_072)  # LightGBM's own limit
    min_data_in_leaf: int = pydantic.Field(20, ge=1, le=10_000_000)
    feature_fraction: Fraction = 0.8
    bagging_fraction: Fraction = 0.8
    bagging_freq: int = pydantic.Field(1, ge=0, le=100_000)
    lambda_l2: Penalty = 1.0
    max_bin: Bins = 255
    early_stopping_rounds: Patience = 30


class LGBMLearner(GBDTLearner):
    """Gradient-boosted trees (LightGBM), one booster per output column.

    The features are binned once per fit; each output only swaps the label of
    the shared training (and validation) Dataset. Models are stored as
    LightGBM text files ``lgbm_<j>.txt`` (truncated at the best iteration)
    with an index ``lgbm.json``.
    """

    name = "lgbm"
    library = "lightgbm"
    quick_params = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15, "early_stopping_rounds": 10}
    tune_space = {
        "params.learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "params.num_leaves": {"type": "int", "low": 7, "high": 127, "log": True},
        "params.min_data_in_leaf": {"type": "int", "low": 5, "high": 200, "log": True},
        "params.feature_fraction": {"type": "float", "low": 0.4, "high": 1.0},
        "params.bagging_fraction": {"type": "float", "low": 0.5, "high": 1.0},
        "params.lambda_l2": {"type": "float", "low": 0.001, "high": 30.0, "log": True},
    }
    Params = LGBMParams
    rows_per_thread = 2_000

    def booster_params(self, rows: int | None = None) -> dict[str, Any]:
        """The LightGBM parameters for a fit on ``rows`` rows; the Dataset and the training share them."""
        return {
            "objective": "regression",
            "metric": "l2",
            **self.params.library_params(),
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads(rows),
            "verbose": -1,
        }

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> LGBMLearner:
        """Fit one booster per output column on a Dataset binned once."""
        params = self.booster_params(len(train.X))
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
        for j in track(range(len(labels)), "lgbm boosters"):
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
        with steps("lgbm rounds", self.params.n_estimators) as advance:
            return lgb.train(
                params,
                train_set,
                num_boost_round=self.params.n_estimators,
                valid_sets=[valid_set] if valid_set is not None else None,
                valid_names=["valid"] if valid_set is not None else None,
                callbacks=[*callbacks, lambda env: advance()],
            )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every booster at its best iteration."""
        X = as_float32(X)
        threads = self.threads(len(X))
        boosters = zip(self.boosters_, self.best_iterations, strict=True)
        columns = [b.predict(X, num_iteration=n, num_threads=threads) for b, n in boosters]
        return np.column_stack(columns).astype(np.float32)

    def save(self, folder: Path) -> list[Path]:
        """Write each booster as LightGBM text and the index ``lgbm.json``."""

        def write(booster: lgb.Booster, best: int, path: Path) -> None:
            booster.save_model(path, num_iteration=best)

        return save_models(folder, "lgbm", ".txt", self.boosters_, self.best_iterations, write)

    def load(self, folder: Path) -> LGBMLearner:
        """Read the boosters written by :meth:`save`."""
        self.boosters_, self.best_iterations = load_models(folder, "lgbm", lambda path: lgb.Booster(model_file=path))
        return self


def _columns(Y) -> np.ndarray:
    """Targets as (outputs x rows) float32, so each output's label is contiguous; 1-D is one output."""
    Y = np.asarray(Y, dtype=np.float32)
    return np.ascontiguousarray(Y.reshape(len(Y), -1).T)
