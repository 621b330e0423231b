"""The ridge learner: same model as scikit-learn's Ridge on standardised features, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from mmscel.learners import learner_class
from mmscel.learners.base import FitData
from mmscel.learners.ridge import RidgeLearner


def linear_data(n=300, d=20, m=6, seed=0):
    """Features on very different scales (one constant) and noisy linear targets."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.1, 20, size=d) + 3).astype(np.float32)
    X[:, 5] = 1.5
    Y = (X @ rng.normal(size=(d, m)) / 10 + rng.normal(size=(n, m))).astype(np.float32)
    return X, Y


def test_registered():
    assert learner_class("ridge") is RidgeLearner


@pytest.mark.parametrize("standardize", [True, False])
def test_matches_sklearn_ridge(standardize):
    X, Y = linear_data()
    X_in = X.copy()
    learner = RidgeLearner({"alpha": 3.0, "standardize": standardize}).fit(FitData(X[:200], Y[:200]))
    scale = X[:200].std(axis=0) if standardize else np.ones(X.shape[1], np.float32)
    scale[scale == 0] = 1
    expected = Ridge(alpha=3.0).fit(X[:200] / scale, Y[:200]).predict(X[200:] / scale)
    pred = learner.predict(X[200:])
    assert pred.dtype == np.float32 and pred.shape == (100, Y.shape[1])
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(X, X_in)  # the caller's features are never modified


def test_save_load_round_trip(tmp_path):
    X, Y = linear_data()
    learner = RidgeLearner({"alpha": 10.0}).fit(FitData(X, Y))
    files = learner.save(tmp_path / "model")
    assert {f.name for f in files} == {"ridge.npz", "ridge.json"}
    loaded = RidgeLearner({"alpha": 10.0}).load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), learner.predict(X))
