"""The gradient-boosting learners (LightGBM, XGBoost, CatBoost) on small synthetic data."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pydantic
import pytest

from mmscel.learners import learner_class
from mmscel.learners.base import FitData

# One thread: the learners are deterministic per seed at any thread count, and
# OpenMP spin-waiting makes 2 threads very slow when other jobs share the 2 cores.
N_JOBS = 1
ROUNDS = 60

SPECS = {
    "lgbm": ("lgbm", {"n_estimators": ROUNDS, "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 10}),
    "xgb": ("xgb", {"n_estimators": ROUNDS, "learning_rate": 0.1, "max_depth": 4}),
    "xgb_multi_tree": (
        "xgb",
        {"n_estimators": ROUNDS, "learning_rate": 0.1, "max_depth": 4, "multi_strategy": "multi_output_tree"},
    ),
    "catboost": ("catboost", {"iterations": ROUNDS, "learning_rate": 0.1, "depth": 4}),
    "catboost_rmse": ("catboost", {"iterations": ROUNDS, "learning_rate": 0.1, "depth": 4, "loss": "RMSE"}),
}
ROUNDS_KEY = {"lgbm": "n_estimators", "xgb": "n_estimators", "catboost": "iterations"}


def make_learner(spec: str, seed: int = 0, **overrides):
    """A learner of ``spec`` with test-sized parameters (``overrides`` replace some)."""
    name, params = SPECS[spec]
    return learner_class(name)({**params, **overrides}, seed=seed, n_jobs=N_JOBS)


def make_data(seed: int = 0, n: int = 400, d: int = 20, noise_only: bool = False):
    """Train (250), validation (50) and test (100) parts of a nonlinear 3-output problem."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    signal = np.column_stack(
        [np.sin(2 * X[:, 0]) + X[:, 1] ** 2, np.sign(X[:, 2]) + 0.5 * X[:, 3], np.abs(X[:, 4]) - X[:, 5]]
    )
    noise = rng.normal(size=signal.shape)
    Y = (noise if noise_only else signal + 0.1 * noise).astype(np.float32)
    return FitData(X[:250], Y[:250]), FitData(X[250:300], Y[250:300]), FitData(X[300:], Y[300:])


def r2_per_column(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each output column."""
    return 1 - ((Y - P) ** 2).sum(axis=0) / ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)


@pytest.fixture(scope="module")
def data():
    """The shared signal data (train, valid, test)."""
    return make_data()


@pytest.fixture(scope="module", params=list(SPECS))
def fitted(request, data):
    """(spec, learner fitted on train with early stopping on valid)."""
    train, valid, _ = data
    return request.param, make_learner(request.param).fit(train, valid)


def test_beats_training_mean(fitted, data):
    spec, learner = fitted
    train, _, test = data
    pred = learner.predict(test.X)
    assert pred.dtype == np.float32 and pred.shape == test.Y.shape
    r2 = r2_per_column(test.Y, pred)
    r2_mean = r2_per_column(test.Y, np.broadcast_to(train.Y.mean(axis=0), test.Y.shape))
    assert (r2 > 0.3).all() and (r2 > r2_mean + 0.3).all(), (spec, r2, r2_mean)


def test_fit_info_reports_best_iterations(fitted):
    spec, learner = fitted
    best = learner.fit_info()["best_iterations"]
    per_output = spec in ("lgbm", "catboost_rmse")
    assert len(best) == (3 if per_output else 1)
    assert all(1 <= b <= ROUNDS for b in best)


def test_deterministic_for_a_seed(fitted, data):
    spec, learner = fitted
    train, valid, test = data
    again = make_learner(spec).fit(train, valid)
    np.testing.assert_array_equal(again.predict(test.X), learner.predict(test.X))
    assert again.best_iterations == learner.best_iterations


def assert_roundtrip(spec: str, learner, folder: Path, X: np.ndarray) -> None:
    """Save ``learner``, load it into a fresh one and compare predictions and files."""
    files = learner.save(folder)
    assert files and all(f.is_file() and f.parent == folder for f in files)
    for f in files:
        assert f.read_bytes()[:1] != b"\x80", f"{f.name} looks like a pickle"
    fresh = make_learner(spec).load(folder)
    np.testing.assert_array_equal(fresh.predict(X), learner.predict(X))
    assert fresh.best_iterations == learner.best_iterations


def test_save_load_roundtrip(fitted, data, tmp_path):
    spec, learner = fitted
    assert_roundtrip(spec, learner, tmp_path / "model", data[2].X)


@pytest.mark.parametrize("spec", list(SPECS))
def test_early_stopping_on_noise(spec, tmp_path):
    train, valid, test = make_data(seed=1, noise_only=True)
    name = SPECS[spec][0]
    rounds = 200
    learner = make_learner(spec, **{ROUNDS_KEY[name]: rounds, "early_stopping_rounds": 5})
    learner.fit(train, valid)
    assert all(1 <= b < rounds for b in learner.best_iterations), learner.best_iterations
    # the truncated model survives a save/load unchanged
    assert_roundtrip(spec, learner, tmp_path / "model", test.X)


@pytest.mark.parametrize("spec", list(SPECS))
def test_single_output(spec, data):
    train, valid, test = data
    one = FitData(train.X, train.Y[:, :1])
    learner = make_learner(spec).fit(one, FitData(valid.X, valid.Y[:, :1]))
    pred = learner.predict(test.X)
    assert pred.shape == (len(test.X), 1) and pred.dtype == np.float32
    assert r2_per_column(test.Y[:, :1], pred)[0] > 0.3


@pytest.mark.parametrize("spec", list(SPECS))
def test_no_valid_uses_all_rounds(spec, data):
    train, _, test = data
    learner = make_learner(spec, **{ROUNDS_KEY[SPECS[spec][0]]: 20}).fit(train)
    assert set(learner.best_iterations) == {20}
    assert learner.predict(test.X).shape == test.Y.shape


@pytest.mark.parametrize("name", ["lgbm", "xgb", "catboost"])
def test_unknown_param_is_refused_by_name(name):
    with pytest.raises(pydantic.ValidationError, match="not_a_param"):
        learner_class(name)({"not_a_param": 1})


@pytest.mark.parametrize(("name", "key"), [("xgb", "multi_strategy"), ("catboost", "loss")])
def test_bad_choice_is_refused(name, key):
    with pytest.raises(pydantic.ValidationError, match=key):
        learner_class(name)({key: "nope"})


def test_lgbm_bins_features_once_per_fit(data, monkeypatch):
    """All outputs share one binned training Dataset (and one validation Dataset)."""
    built = []  # one entry per actual binning: True for training, False for validation Datasets
    lazy_init = lgb.Dataset._lazy_init

    def spy(self, *args, **kwargs):
        built.append(self.reference is None)
        return lazy_init(self, *args, **kwargs)

    monkeypatch.setattr(lgb.Dataset, "_lazy_init", spy)
    train, valid, _ = data
    learner = make_learner("lgbm", n_estimators=10).fit(train, valid)
    assert len(learner.boosters_) == 3
    assert sorted(built) == [False, True]
    built.clear()
    make_learner("lgbm", n_estimators=10).fit(train)
    assert built == [True]


def test_catboost_module_does_not_shadow_library():
    import catboost

    import mmscel.learners.catboost as module

    assert module.cb is catboost and module.cb is not module
    assert hasattr(catboost, "CatBoostRegressor")
    assert Path(catboost.__file__).parent.name == "catboost"


def test_threads_follow_the_rows():
    lgbm = learner_class("lgbm")({}, n_jobs=2)
    assert [lgbm.threads(rows) for rows in (None, 10, 3_999, 4_000, 10**6)] == [2, 1, 1, 2, 2]
    assert learner_class("lgbm")({}, n_jobs=1).threads(10**6) == 1
    assert [learner_class(name)({}, n_jobs=2).threads(10) for name in ("xgb", "catboost")] == [2, 2]


def test_a_lgbm_fit_on_few_rows_uses_one_thread_and_predicts_as_with_two(data, monkeypatch):
    """250 rows fit on one thread of two; forcing both threads changes no prediction."""
    train, valid, test = data
    learner = learner_class("lgbm")(SPECS["lgbm"][1], seed=3, n_jobs=2)
    assert learner.booster_params(len(train.X))["num_threads"] == 1
    one = learner.fit(train, valid).predict(test.X)

    monkeypatch.setattr(type(learner), "rows_per_thread", 1)
    assert learner.booster_params(len(train.X))["num_threads"] == 2
    two = learner.clone().fit(train, valid).predict(test.X)
    np.testing.assert_array_equal(one, two)
