"""The torch MLP learner: learning, in-network reconstruction, determinism, early stopping, save/load."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import scipy.sparse as sp
import torch

from mmscel.learners import learner_class
from mmscel.learners.base import FitData, RowSubset, TargetBasis
from mmscel.learners.mlp import MLPLearner
from mmscel.learners.mlp_loss import correlation_loss
from mmscel.metrics import pearson_per_row

FAST = {"hidden": [64, 64], "epochs": 40, "batch_size": 64, "lr": 3e-3, "patience": 6}


def mlp(params, seed=0, n_jobs=1):
    """A learner on one thread: tiny batches on a busy 2-core machine run far faster than on two."""
    return MLPLearner(params, seed=seed, n_jobs=n_jobs)


def nonlinear_data(n=600, d=30, m=20, seed=0):
    """Rows of a mean profile plus a nonlinear function of X, plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    A, B = rng.normal(size=(d, 16)) / np.sqrt(d), rng.normal(size=(16, m))
    profile = rng.normal(size=m) * 2
    Y = profile + np.tanh(2 * X @ A) @ B + 0.3 * X[:, :1] ** 2 + 0.2 * rng.normal(size=(n, m))
    return X, Y.astype(np.float32)


def mean_profile_score(Y_train, Y_test):
    """Per-row Pearson of the training-mean profile (the trivial baseline)."""
    return pearson_per_row(Y_test, np.tile(Y_train.mean(axis=0), (len(Y_test), 1))).mean()


def reconstruction_data(n=600, d=30, genes=200, k=8, seed=1):
    """Y_full = Z @ V + mean + noise (clipped at 0) with orthonormal V; Y = projections on V."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Z = np.tanh(X @ rng.normal(size=(d, k)) / np.sqrt(d) * 2) * 3
    V = np.linalg.qr(rng.normal(size=(genes, k)))[0].T.astype(np.float32)  # (k, genes), orthonormal rows
    mean = np.abs(rng.normal(size=genes)).astype(np.float32)
    Y_full = np.maximum(Z @ V + mean + 0.05 * rng.normal(size=(n, genes)), 0).astype(np.float32)
    Y = ((Y_full - mean) @ V.T).astype(np.float32)
    return X, Y, Y_full, TargetBasis(components=V, mean=mean)


def test_registered():
    assert learner_class("mlp") is MLPLearner


def test_correlation_loss_matches_metric():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 12)), rng.normal(size=(50, 12))
    loss = correlation_loss(torch.tensor(a), torch.tensor(b)).item()
    assert loss == pytest.approx(1 - pearson_per_row(b, a).mean(), abs=1e-6)


@pytest.mark.parametrize("loss", ["mse", "correlation", "mse+correlation"])
def test_learns_nonlinear_targets(loss):
    X, Y = nonlinear_data()
    learner = mlp({**FAST, "loss": loss}, seed=0).fit(FitData(X[:400], Y[:400]))
    pred = learner.predict(X[400:])
    assert pred.shape == (200, Y.shape[1]) and pred.dtype == np.float32
    assert learner.best_iterations is None  # no valid set: all epochs
    score, baseline = pearson_per_row(Y[400:], pred).mean(), mean_profile_score(Y[:400], Y[400:])
    assert score > baseline + 0.05, (score, baseline)


def test_reconstruct_mode_with_sparse_full_targets():
    X, Y, Y_full, basis = reconstruction_data()
    Y_csr = sp.csr_matrix(Y_full[:400])
    learner = mlp(FAST, seed=0).fit(FitData(X[:400], Y[:400], Y_csr), basis=basis)
    pred = learner.predict(X[400:])
    assert pred.shape == (200, basis.components.shape[0])
    score = pearson_per_row(Y_full[400:], basis.reconstruct(pred)).mean()
    baseline = mean_profile_score(Y_full[:400], Y_full[400:])
    assert score > baseline + 0.05, (score, baseline)
    dense = mlp(FAST, seed=0).fit(FitData(X[:400], Y[:400], Y_full[:400]), basis=basis)
    np.testing.assert_array_equal(dense.predict(X[400:]), pred)  # CSR and dense Y_full: same fit


def test_full_targets_as_a_row_subset_fit_like_a_copy():
    X, Y, Y_full, basis = reconstruction_data(n=300)
    whole = sp.csr_matrix(Y_full)
    rows = np.random.default_rng(3).permutation(300)[:200]  # a fold's rows, unordered
    params = {**FAST, "epochs": 6}
    subset = RowSubset(whole, rows)
    assert subset.shape == (200, Y_full.shape[1]) and len(subset) == 200
    np.testing.assert_array_equal(subset[np.array([5, 0])].toarray(), Y_full[rows[[5, 0]]])
    copied = mlp(params, seed=0).fit(FitData(X[rows], Y[rows], whole[rows]), basis=basis)
    viewed = mlp(params, seed=0).fit(FitData(X[rows], Y[rows], subset), basis=basis)
    np.testing.assert_array_equal(viewed.predict(X), copied.predict(X))


def test_reconstruct_off_or_without_full_targets_fits_on_y():
    X, Y, Y_full, basis = reconstruction_data(n=300)
    params = {**FAST, "epochs": 5}
    off = mlp({**params, "reconstruct": False}, seed=0).fit(FitData(X, Y, Y_full), basis=basis)
    no_full = mlp(params, seed=0).fit(FitData(X, Y), basis=basis)
    np.testing.assert_array_equal(off.predict(X), no_full.predict(X))


def test_same_seed_same_predictions():
    X, Y = nonlinear_data(n=300)
    params = {**FAST, "epochs": 8, "norm": "batch"}

    def torch_state():
        return torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), fill_uninitialized_memory()

    before = torch_state()
    first = mlp(params, seed=7, n_jobs=2).fit(FitData(X, Y)).predict(X)
    second = mlp(params, seed=7, n_jobs=2).fit(FitData(X, Y)).predict(X)
    other = mlp(params, seed=8, n_jobs=2).fit(FitData(X, Y)).predict(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert torch_state() == before


def test_a_fit_on_few_rows_runs_torch_on_one_thread(monkeypatch):
    """300 rows train and predict on one thread of two; forcing two moves predictions by rounding only."""
    X, Y = nonlinear_data(n=300)
    params = {**FAST, "epochs": 4}
    threads = []
    set_num_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (threads.append(n), set_num_threads(n)))
    one = mlp(params, seed=2, n_jobs=2).fit(FitData(X, Y)).predict(X)
    assert threads[0::2] == [1, 1]  # fit and predict; the odd calls restore torch's setting

    threads.clear()
    monkeypatch.setattr(MLPLearner, "rows_per_thread", 1)
    two = mlp(params, seed=2, n_jobs=2).fit(FitData(X, Y)).predict(X)
    assert threads[0::2] == [2, 2]
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-4)


def fill_uninitialized_memory():
    return torch.utils.deterministic.fill_uninitialized_memory


def test_input_scaling_is_fitted_once_and_matches_the_network():
    X, Y = nonlinear_data(n=300)
    X[:, 3] = 2.5  # a constant feature keeps unit scale
    learner = mlp({**FAST, "epochs": 1})
    learner.model_ = learner._build(torch.from_numpy(X), Y)
    Z = learner._fit_scaling(torch.from_numpy(X.copy()))
    std = X.std(axis=0)
    np.testing.assert_allclose(learner.model_.x_mean.numpy(), X.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(learner.model_.x_std.numpy(), np.where(std > 0, std, 1), rtol=1e-5)
    np.testing.assert_array_equal(Z.numpy(), learner.model_.standardize(torch.from_numpy(X)).numpy())


def test_early_stopping_keeps_best_epoch():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(360, 30)).astype(np.float32)
    Y = (X[:, :3] @ rng.normal(size=(3, 15)) + 2.0 * rng.normal(size=(360, 15))).astype(np.float32)
    params = {"hidden": [256, 256], "dropout": 0.0, "lr": 3e-3, "epochs": 60, "batch_size": 32, "patience": 4}
    learner = mlp(params, seed=0).fit(FitData(X[:160], Y[:160]), valid=FitData(X[160:], Y[160:]))
    (best,) = learner.best_iterations
    scores = learner.valid_scores_
    assert 1 <= best < params["epochs"] and len(scores) < params["epochs"]
    assert scores[best - 1] == max(scores) >= scores[-1]
    restored = pearson_per_row(Y[160:], learner.predict(X[160:])).mean()
    assert restored == pytest.approx(scores[best - 1], abs=1e-6)
    assert learner.fit_info()["best_iterations"] == [best]


def test_early_stopping_scores_reconstructed_targets():
    X, Y, Y_full, basis = reconstruction_data(n=400)
    train = FitData(X[:300], Y[:300], sp.csr_matrix(Y_full[:300]))
    valid = FitData(X[300:], Y[300:], sp.csr_matrix(Y_full[300:]))
    learner = mlp({**FAST, "epochs": 10}, seed=0).fit(train, valid=valid, basis=basis)
    full_score = pearson_per_row(Y_full[300:], basis.reconstruct(learner.predict(X[300:]))).mean()
    assert full_score == pytest.approx(max(learner.valid_scores_), abs=1e-6)


def test_save_load_round_trip(tmp_path):
    X, Y = nonlinear_data(n=300)
    params = {**FAST, "epochs": 5, "norm": "batch"}
    learner = mlp(params, seed=0).fit(FitData(X[:200], Y[:200]), valid=FitData(X[200:], Y[200:]))
    files = learner.save(tmp_path / "model")
    assert {f.name for f in files} == {"mlp.pt", "mlp.json"}
    state = torch.load(tmp_path / "model" / "mlp.pt", weights_only=True)
    assert "x_mean" in state and "x_std" in state
    loaded = mlp(params, seed=0).load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), learner.predict(X))
    assert loaded.best_iterations == learner.best_iterations


def test_unknown_param_is_refused_by_name():
    with pytest.raises(pydantic.ValidationError, match="hiden"):
        MLPLearner({"hiden": [32]})


def test_a_diverging_fit_names_the_learning_rate():
    from mmscel.learners import FitFailed

    X, Y = nonlinear_data()[:2]
    with pytest.raises(FitFailed, match="params.lr"):
        mlp({"epochs": 5, "lr": 1e12, "loss": "mse", "norm": "none", "weight_decay": 0.0}).fit(
            FitData(X[:500], Y[:500])
        )
