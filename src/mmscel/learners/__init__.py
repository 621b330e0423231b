"""Level-1 base learners behind one interface (:class:`~mmscel.learners.base.BaseLearner`)."""

from __future__ import annotations

import importlib

from mmscel.learners.base import BaseLearner, FitData, LearnerParams, TargetBasis

# learner name -> "module:Class"; modules are imported on first use.
REGISTRY = {
    "ridge": "mmscel.learners.ridge:RidgeLearner",
    "lgbm": "mmscel.learners.lgbm:LGBMLearner",
    "xgb": "mmscel.learners.xgb:XGBLearner",
    "catboost": "mmscel.learners.catboost:CatBoostLearner",
    "mlp": "mmscel.learners.mlp:MLPLearner",
}


def learner_class(name: str) -> type[BaseLearner]:
    """The learner class registered under ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown learner {name!r}; choose one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["BaseLearner", "FitData", "LearnerParams", "REGISTRY", "TargetBasis", "learner_class"]
