"""CatBoost: one MultiRMSE model for all outputs, or one RMSE model per output.

This module is ``mmscel.learners.catboost``; absolute imports (the only kind
in Python 3) make ``import catboost`` below resolve to the library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import catboost as cb
import numpy as np
import pydantic

from mmscel.learners.base import FitData, LearnerParams, TargetBasis, as_float32, targets_2d
from mmscel.learners.device import Device, catboost_cuda_problem, check_gpu_setting
from mmscel.learners.gbdt import GBDTLearner, LearningRate, Patience, Penalty, Rounds, load_models, save_models
from mmscel.progress import steps, track


class CatBoostParams(LearnerParams):
    """Parameters of :class:`CatBoostLearner`.

    Parameters
    ----------
    iterations
        Trees to grow at most; with a validation part, early stopping may keep fewer.
    learning_rate
        Step size applied to each new tree.
    depth
        Depth of every (oblivious, symmetric) tree.
    l2_leaf_reg
        L2 regularisation of the leaf values.
    border_count
        Quantisation borders per feature.
    early_stopping_rounds
        Iterations without a lower validation loss before stopping (0: grow all ``iterations``).
    loss
        ``MultiRMSE``: one model for all outputs; ``RMSE``: one model per output column.
    device
        ``cpu``, or ``cuda``: CatBoost's ``task_type="GPU"``. Part of the run's hash, as GPU fits
        differ from CPU fits; ``MultiRMSE`` fits on a GPU from CatBoost 1.2.1 on.
    """

    iterations: Rounds = 300
    learning_rate: LearningRate = 0.08
    depth: int = pydantic.Field(6, ge=1, le=16)
    l2_leaf_reg: Penalty = 3.0
    border_count: int = pydantic.Field(128, ge=1, le=65535)
    early_stopping_rounds: Patience = 30
    loss: Literal["MultiRMSE", "RMSE"] = "MultiRMSE"
    device: Device = "cpu"

    own_fields: ClassVar[frozenset[str]] = frozenset({"early_stopping_rounds", "loss", "device"})

    @pydantic.field_validator("device")
    @classmethod
    def _gpu_fits_the_loss(cls, device: str, info: pydantic.ValidationInfo) -> str:
        return check_gpu_setting(device, info.data, "loss", "MultiRMSE", "catboost", "1.2.1")

    @classmethod
    def cuda_problem(cls) -> str | None:
        """Why CatBoost cannot fit on a GPU here (None: it can)."""
        return catboost_cuda_problem()


class CatBoostLearner(GBDTLearner):
    """Gradient-boosted oblivious trees (CatBoost).

    Models are stored as native ``catboost_<j>.cbm`` files (one for MultiRMSE,
    one per output for RMSE), already cut at the best iteration, with an index
    ``catboost.json``.
    """

    name = "catboost"
    library = "catboost"
    quick_params = {"iterations": 60, "learning_rate": 0.15, "depth": 4, "early_stopping_rounds": 10}
    tune_space = {
        "params.learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
        "params.depth": {"type": "int", "low": 3, "high": 8},
        "params.l2_leaf_reg": {"type": "float", "low": 0.1, "high": 30.0, "log": True},
    }
    Params = CatBoostParams

    def booster_params(self, rows: int | None = None) -> dict[str, Any]:
        """The keyword arguments of :class:`catboost.CatBoostRegressor` for a fit on ``rows`` rows.

        ``device: cuda`` adds ``task_type="GPU"`` and ``boosting_type="Plain"``: the CPU's scheme,
        where CatBoost's GPU default for up to 50,000 rows is ``Ordered``, which it does not
        implement for multi-target losses.
        """
        p = self.params
        params = {
            "loss_function": p.loss,
            **p.library_params(),
            "random_seed": self.seed,
            "thread_count": self.threads(rows),
            "verbose": False,
            "allow_writing_files": False,
        }
        if p.device == "cuda":
            params.update(task_type="GPU", boosting_type="Plain")
        return params

    def fit(self, train: FitData, valid: FitData | None = None, basis: TargetBasis | None = None) -> CatBoostLearner:
        """Fit one MultiRMSE model, or one RMSE model per output column."""
        X, Y = as_float32(train.X), targets_2d(train.Y)
        X_valid, Y_valid = (as_float32(valid.X), targets_2d(valid.Y)) if valid is not None else (None, None)
        # catboost.Pool has no label setter, so RMSE builds one Pool per output
        # (quantisation of the same X is deterministic, so every output sees the same borders).
        targets = [slice(None)] if self.params.loss == "MultiRMSE" else range(Y.shape[1])
        self.models_ = []
        for cols in track(targets, "catboost models", total=len(targets)):
            eval_pool = None if valid is None else cb.Pool(X_valid, label=Y_valid[:, cols])
            self.models_.append(self._fit_one(cb.Pool(X, label=Y[:, cols]), eval_pool))
        self.best_iterations = [int(m.tree_count_) for m in self.models_]
        return self

    def _fit_one(self, pool: cb.Pool, eval_pool: cb.Pool | None) -> cb.CatBoostRegressor:
        model = cb.CatBoostRegressor(**self.booster_params(pool.num_row()))
        options = {}
        if eval_pool is not None:
            stopping = self.params.early_stopping_rounds or None
            options.update(eval_set=eval_pool, use_best_model=stopping is not None, early_stopping_rounds=stopping)
        with steps("catboost rounds", self.params.iterations) as advance:
            # CatBoost refuses user-defined callbacks on a GPU: no per-round progress there
            callbacks = [_Rounds(advance)] if self.params.device == "cpu" else None
            return model.fit(pool, callbacks=callbacks, **options)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the fitted model(s)."""
        X = as_float32(X)
        threads = self.threads(len(X))
        columns = [m.predict(X, thread_count=threads).reshape(len(X), -1) for m in self.models_]
        return np.hstack(columns).astype(np.float32)

    def save(self, folder: Path) -> list[Path]:
        """Write the models as native ``.cbm`` files and the index ``catboost.json``."""

        def write(model: cb.CatBoostRegressor, best: int, path: Path) -> None:
            model.save_model(str(path), format="cbm")  # best is its tree count: nothing to cut

        return save_models(folder, "catboost", ".cbm", self.models_, self.best_iterations, write)

    def load(self, folder: Path) -> CatBoostLearner:
        """Read the models written by :meth:`save`."""
        self.models_, self.best_iterations = load_models(folder, "catboost", self._load_one)
        return self

    def _load_one(self, path: Path) -> cb.CatBoostRegressor:
        model = cb.CatBoostRegressor(thread_count=self.n_jobs)
        return model.load_model(str(path), format="cbm")


class _Rounds:
    """Counts the boosting rounds for the progress display (a CatBoost callback)."""

    def __init__(self, advance):
        self.advance = advance

    def after_iteration(self, info) -> bool:
        """One more round; True: go on."""
        self.advance()
        return True
