"""mmscel: a competition stack for multimodal single-cell prediction.

The public API (names load on first use, so ``import mmscel`` stays light)::

    import mmscel
    train = mmscel.load("cite", "train", "data")                 # CSR inputs, targets, ids, metadata
    features = mmscel.build_features("cite", {"svd_components": 64}, "data")
    result = mmscel.cross_validate(mmscel.make_learner("ridge", {}), features.train, train.targets,
                                   train.metadata["donor"].factorize()[0])
    run = mmscel.run_level1("configs/cite/ridge.yaml", "data")   # the same, kept in the store
    blend = mmscel.run_level2("configs/blend.yaml", "data")
    mmscel.leaderboard("data")                               # a DataFrame
    mmscel.load_oof("cite", "cite_ridge", data_dir="data")        # predictions by cell id
    mmscel.export(run="cite/cite_ridge", data_dir="data")        # the same as an .h5ad file (AnnData)
    mmscel.submit("data")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load": "mmscel.data.load:load",
    "stacked_inputs": "mmscel.data.load:stacked_inputs",
    "build_features": "mmscel.features:build_features",
    "cross_validate": "mmscel.cv:cross_validate",
    "CVResult": "mmscel.cv:CVResult",
    "Split": "mmscel.cv:Split",
    "make_learner": "mmscel.learners:make_learner",
    "LEARNERS": "mmscel.learners:LEARNERS",
    "BaseLearner": "mmscel.learners.base:BaseLearner",
    "TargetSpace": "mmscel.targets:TargetSpace",
    "NativeTargets": "mmscel.targets:NativeTargets",
    "ProteinSVD": "mmscel.targets:ProteinSVD",
    "GeneSVD": "mmscel.targets:GeneSVD",
    "FOLD_SCHEMES": "mmscel.folds:FOLD_SCHEMES",
    "RunStore": "mmscel.store:RunStore",
    "load_run_config": "mmscel.config:load_run_config",
    "run_level1": "mmscel.level1:run_level1",
    "run_level2": "mmscel.blend.run:run_level2",
    "BLEND_METHODS": "mmscel.blend.methods:BLEND_METHODS",
    "submit": "mmscel.blend.submit:submit",
    "leaderboard": "mmscel.api:leaderboard",
    "load_oof": "mmscel.api:load_oof",
    "export": "mmscel.h5ad_export:export",
    "import_anndata": "mmscel.api:import_anndata",
    "predictions": "mmscel.api:predictions",
    "tune": "mmscel.tune.session:tune",
    "report": "mmscel.reporting.page:report",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'mmscel' has no attribute {name!r}")
    module, _, attribute = _API[name].partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
