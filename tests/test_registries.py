"""One suite per extension point that every registered implementation passes."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmscel.config import RunConfig
from mmscel.features import FEATURE_BLOCKS, FEATURE_CONFIGS, BlockContext, compute_blocks
from mmscel.folds import FOLD_SCHEMES
from mmscel.learners import LEARNERS, make_learner
from mmscel.learners.base import FitData
from mmscel.registry import Registry, UnknownName


def metadata(n=240, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "cell_id": [f"c{i}" for i in range(n)],
            "donor": rng.choice([13176, 31800, 32606], n),
            "day": rng.choice([2, 3, 4], n),
        }
    )


@pytest.mark.parametrize("scheme", FOLD_SCHEMES.names())
def test_every_fold_scheme_assigns_whole_groups(scheme):
    meta = metadata()
    fold = FOLD_SCHEMES.get(scheme)(n_splits=3, seed=1).assign(meta)
    assert fold.shape == (len(meta),) and fold.dtype == np.int64 and (fold >= -1).all()
    assert len(np.unique(fold[fold >= 0])) >= 1
    if scheme in ("donor", "day"):  # no group is split across folds
        assert (pd.Series(fold).groupby(meta[scheme]).nunique() == 1).all()
    if scheme == "last_day":
        np.testing.assert_array_equal(fold >= 0, meta["day"] == meta["day"].max())
    again = FOLD_SCHEMES.get(scheme)(n_splits=3, seed=1).assign(meta)
    np.testing.assert_array_equal(fold, again)  # deterministic: the fold file can be made again


@pytest.mark.parametrize("scheme", FOLD_SCHEMES.names())
def test_every_fold_scheme_is_accepted_by_configs(scheme):
    config = RunConfig(name="x", task="cite", learner="ridge", folds={"scheme": scheme})
    assert config.folds.scheme == scheme


@pytest.mark.parametrize("name", LEARNERS.names())
def test_every_learner_fits_predicts_and_reloads(name, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    Y = (X @ rng.normal(size=(8, 3))).astype(np.float32)
    learner_cls = LEARNERS.get(name)
    assert learner_cls.library and learner_cls.quick_params
    learner = make_learner(name, learner_cls.quick_params, seed=0, n_jobs=1)
    learner.fit(FitData(X[:240], Y[:240]), FitData(X[240:], Y[240:]) if learner.uses_validation else None)
    predictions = learner.predict(X)
    assert predictions.shape == Y.shape and predictions.dtype == np.float32
    assert np.corrcoef(predictions[:, 0], Y[:, 0])[0, 1] > 0.5
    learner.save(tmp_path)
    reloaded = learner.clone().load(tmp_path)
    np.testing.assert_allclose(reloaded.predict(X), predictions, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_every_feature_block_of_a_task_gives_one_row_per_cell(task):
    rng = np.random.default_rng(0)
    inputs = sp.random(60, 40, density=0.3, format="csr", dtype=np.float32, random_state=3)
    names = np.array([f"chr{i % 3 + 1}:{i}-{i + 5}" if task == "multi" else f"ENSG{i}_CD{i}" for i in range(40)])
    train = type("Train", (), {"n_cells": 40, "input_names": names, "target_names": np.array(["CD1", "CD2"])})()
    train.targets = rng.normal(size=(40, 2)).astype(np.float32)
    config = FEATURE_CONFIGS[task](svd_components=4, **({"binary_svd_components": 3} if task == "multi" else {}))
    assert set(config.blocks) <= set(FEATURE_BLOCKS.names())
    blocks = compute_blocks(config, BlockContext(inputs, train, metadata(60), config, seed=0))
    assert [len(values) for _, values in blocks] == [60] * len(blocks)
    assert all(len(names) == values.shape[1] for names, values in blocks)
    assert blocks[0][0][0] == "svd_0"  # column order follows config.blocks, whatever the computing order


def test_a_registry_names_what_it_holds():
    registry: Registry = Registry("widget")
    registry.register("a", "collections:OrderedDict")
    registry.register("b")(dict)
    assert registry.names() == ["a", "b"] and registry.get("b") is dict
    assert registry.get("a").__name__ == "OrderedDict"  # imported on first use
    with pytest.raises(UnknownName, match="unknown widget 'c'; choose one of a, b"):
        registry.get("c")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", list)
