"""Level-1 base learners behind one interface (:class:`~mmscel.learners.base.BaseLearner`).

``LEARNERS`` is the one list of learners: configs, the command line and the
tests read it. A learner is added with its module and one line here (or one
``LEARNERS.register`` call from outside the package); modules are imported on
first use, so the GBDT and torch libraries load only when a run needs them.
"""

from __future__ import annotations

from mmscel.learners.base import BaseLearner, FitData, FitFailed, LearnerParams
from mmscel.registry import Registry

LEARNERS: Registry[type[BaseLearner]] = Registry("learner")
LEARNERS.register("ridge", "mmscel.learners.ridge:RidgeLearner")
LEARNERS.register("lgbm", "mmscel.learners.lgbm:LGBMLearner")
LEARNERS.register("xgb", "mmscel.learners.xgb:XGBLearner")
LEARNERS.register("catboost", "mmscel.learners.catboost:CatBoostLearner")
LEARNERS.register("mlp", "mmscel.learners.mlp:MLPLearner")


def learner_class(name: str) -> type[BaseLearner]:
    """Look up a learner class by name, importing its module on first use.

    Parameters
    ----------
    name
        A name registered in ``LEARNERS`` (``"ridge"``, ``"lgbm"``, ...).

    Returns
    -------
    type of BaseLearner
        The learner class.

    Raises
    ------
    mmscel.registry.UnknownName
        When no learner is registered under ``name``.
    """
    return LEARNERS.get(name)


def make_learner(name: str, params, seed: int = 0, n_jobs: int = 2, seeds: int = 1) -> BaseLearner:
    """A learner ready to fit: one instance, or a seed bag of ``seeds`` copies.

    Parameters
    ----------
    name
        A registered learner name.
    params
        Its parameters (a mapping or its ``Params`` model).
    seed, n_jobs
        Seed and threads of the learner.
    seeds
        Bag size; above 1, a :class:`~mmscel.learners.bag.SeedBag` of differently seeded copies.

    Returns
    -------
    BaseLearner
        The unfitted learner or bag.

    Raises
    ------
    mmscel.registry.UnknownName
        When no learner is registered under ``name``.
    pydantic.ValidationError
        When ``params`` holds an unknown key or a bad value.
    """
    cls = learner_class(name)
    params = params if isinstance(params, cls.Params) else cls.Params(**dict(params or {}))
    if seeds > 1:
        from mmscel.learners.bag import SeedBag

        return SeedBag(cls, params, seeds, seed=seed, n_jobs=n_jobs)
    return cls(params, seed=seed, n_jobs=n_jobs)


__all__ = ["LEARNERS", "BaseLearner", "FitData", "FitFailed", "LearnerParams", "learner_class", "make_learner"]
