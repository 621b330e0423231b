"""The MLP's optional techniques: decoder and heads, auxiliary loss and its fade, OneCycle, no early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mmscel.config import validate_run_config
from mmscel.cv import cross_validate
from mmscel.errors import InputError
from mmscel.learners import make_learner
from mmscel.learners.base import FitData
from mmscel.learners.mlp import MLPLearner, MLPParams
from mmscel.learners.mlp_loss import Objective, batches_per_epoch, compute_loss, fade_weight
from mmscel.learners.mlp_net import Reconstruction
from mmscel.metrics import pearson_per_row
from test_learners_mlp import mean_profile_score, nonlinear_data, reconstruction_data

SMALL = {"hidden": [48], "epochs": 6, "batch_size": 64, "lr": 3e-3, "patience": 3}
DECODER = {"decoder_blocks": 2, "decoder_width": 32, "decoder_dropout": 0.05, "heads": 3}
WINNER_LIKE = {**DECODER, "aux_loss": "mse", "aux_fade_after": 2, "schedule": "onecycle", "early_stopping": False}
OPTION_SETS = {
    "decoder": DECODER,
    "aux_on_outputs": {"aux_loss": "mae", "aux_weight": 0.5, "aux_fade_after": 1},
    "aux_on_targets": {"aux_loss": "mse", "aux_space": "targets"},
    "onecycle": {"schedule": "onecycle", "pct_start": 0.2},
    "no_early_stopping": {"early_stopping": False},
    "winner_like": WINNER_LIKE,
}


def mlp(params, seed=0):
    return MLPLearner({**SMALL, **params}, seed=seed, n_jobs=1)


def recon_fit(params, seed=0):
    """A fit in reconstruct mode with a validation part; predictions of every row."""
    X, Y, Y_full, basis = reconstruction_data(n=300)
    train = FitData(X[:220], Y[:220], sp.csr_matrix(Y_full[:220]))
    valid = FitData(X[220:], Y[220:], sp.csr_matrix(Y_full[220:]))
    return mlp(params, seed).fit(train, valid, basis).predict(X)


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_each_option_is_deterministic_and_seeded(name):
    params = OPTION_SETS[name]
    first, second, other = recon_fit(params, 4), recon_fit(params, 4), recon_fit(params, 5)
    assert first.shape == (300, 8) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    if name != "no_early_stopping":  # given the same rows, it differs only when early stopping would have stopped
        assert not np.array_equal(first, recon_fit({}, 4))  # the option changes the fit


def test_defaults_build_the_plain_network():
    learner = mlp({})
    learner.model_ = learner._build(torch.zeros(4, 5), np.zeros((4, 3), np.float32))
    keys = {key.split(".")[0] for key in learner.model_.state_dict()}
    assert keys == {"x_mean", "x_std", "body", "head"}
    assert len(learner.model_.all_heads()) == 1 and learner.uses_validation


def test_heads_read_the_deepest_states_and_predictions_are_their_mean():
    X, Y = nonlinear_data(n=500)
    learner = mlp({**DECODER, "epochs": 20}).fit(FitData(X[:400], Y[:400]))
    net = learner.model_
    assert [head.in_features for head in net.all_heads()] == [48, 32, 32] and len(net.decoder) == 2
    with torch.no_grad():
        heads = net.outputs(net.standardize(torch.from_numpy(X[400:])))
    pred = learner.predict(X[400:])
    assert len(heads) == 3 and pred.shape == (100, Y.shape[1])
    np.testing.assert_allclose(pred, torch.stack(heads).mean(dim=0).numpy(), rtol=1e-6, atol=1e-6)
    assert pearson_per_row(Y[400:], pred).mean() > mean_profile_score(Y[:400], Y[400:]) + 0.05


def test_one_head_on_a_decoder_of_the_encoder_width_is_a_deeper_encoder():
    X, Y = nonlinear_data(n=200)
    decoder = mlp({"decoder_blocks": 1, "epochs": 2}).fit(FitData(X, Y)).predict(X)
    deeper = mlp({"hidden": [48, 48], "epochs": 2}).fit(FitData(X, Y)).predict(X)
    np.testing.assert_array_equal(decoder, deeper)


def test_a_decoder_of_another_width_gives_the_shallowest_head_the_encoder_width():
    learner = mlp({"hidden": [24], "decoder_blocks": 1, "decoder_width": 16, "heads": 2})
    learner.model_ = learner._build(torch.zeros(4, 5), np.ones((4, 3), np.float32))
    assert [head.in_features for head in learner.model_.all_heads()] == [24, 16]
    assert all(torch.equal(head.bias, torch.ones(3)) for head in learner.model_.all_heads())


def test_objective_adds_the_weighted_auxiliary_term_and_averages_the_heads():
    torch.manual_seed(0)
    _, _, Y_full, basis = reconstruction_data(n=20)
    recon = Reconstruction(basis)
    outs = [torch.randn(20, 8), torch.randn(20, 8)]
    y_out, y_full = torch.randn(20, 8), torch.from_numpy(Y_full)
    main = [compute_loss("correlation", recon(out), y_full) for out in outs]
    on_outputs = Objective("correlation", "mse")(outs, recon, y_out, y_full, 0.25)
    expected = np.mean([m + 0.25 * F.mse_loss(out, y_out) for m, out in zip(main, outs, strict=True)])
    assert on_outputs.item() == pytest.approx(float(expected), rel=1e-6)
    on_targets = Objective("correlation", "mae", aux_on_targets=True)(outs[:1], recon, y_out, y_full, 2.0)
    assert on_targets.item() == pytest.approx((main[0] + 2.0 * F.l1_loss(recon(outs[0]), y_full)).item(), rel=1e-6)
    assert Objective("correlation", "mse")(outs[:1], recon, y_out, y_full, 0.0).item() == main[0].item()


def test_fade_weight_holds_then_fades_quadratically():
    weights = [fade_weight(epoch, 10, 4) for epoch in range(1, 11)]
    assert weights[:5] == [1.0] * 5
    assert weights[5] == pytest.approx((1 - 1 / 6) ** 2) and weights[-1] == pytest.approx((1 / 6) ** 2)
    assert all(a > b for a, b in zip(weights[4:], weights[5:], strict=False))
    assert {fade_weight(epoch, 10, None) for epoch in range(1, 11)} == {1.0}
    assert fade_weight(3, 3, 5) == 1.0  # the fade starts after the last epoch


@pytest.mark.parametrize(("rows", "batch"), [(129, 64), (128, 64), (130, 64), (1, 64), (65, 64), (64, 256)])
def test_batches_per_epoch_counts_the_steps_the_loop_takes(rows, batch):
    learner = mlp({"batch_size": batch})
    assert batches_per_epoch(rows, batch) == len(learner._batches(torch.arange(rows)))


def test_onecycle_peaks_at_lr_and_ends_low():
    learner = mlp({"schedule": "onecycle", "lr": 0.01, "epochs": 4})
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = learner._scheduler(optimizer, 129)  # 2 steps an epoch: the last batch of one row joins
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert 0.009 < max(rates) <= 0.01 and rates[0] == pytest.approx(0.01 / 25) and rates[-1] < rates[2]


def test_without_early_stopping_every_epoch_runs_on_every_training_row():
    X, Y = nonlinear_data(n=300)
    learner = mlp({"early_stopping": False, "epochs": 4})
    assert not learner.uses_validation and not learner.clone(seed=3).uses_validation
    fitted = learner.fit(FitData(X[:200], Y[:200]), valid=FitData(X[200:], Y[200:]))
    alone = mlp({"early_stopping": False, "epochs": 4}).fit(FitData(X[:200], Y[:200]))
    np.testing.assert_array_equal(fitted.predict(X), alone.predict(X))  # the validation part is not used
    assert fitted.best_iterations is None and fitted.fit_info() == {"epochs": 4}
    assert not make_learner("mlp", {**SMALL, "early_stopping": False}, seeds=2).uses_validation
    folds = np.repeat([0, 1], 150)
    result = cross_validate(mlp({"early_stopping": False, "epochs": 2}), X, Y, folds)
    assert {fold.info["n_early_stopping"] for fold in result.folds.values()} == {0}
    assert {fold.info["n_fit"] for fold in result.folds.values()} == {150}


def test_min_rows_seen_adds_epochs_on_few_rows_only():
    learner = mlp({"epochs": 4, "min_rows_seen": 1000})
    assert [learner.epochs_for(rows) for rows in (100, 200, 301, 1000, 5000)] == [10, 5, 4, 4, 4]
    assert mlp({"epochs": 4}).epochs_for(10) == 4  # 0: exactly ``epochs``


def test_min_rows_seen_fits_what_that_many_epochs_fit():
    X, Y = nonlinear_data(n=300)
    train = FitData(X[:200], Y[:200])
    raised = mlp({"early_stopping": False, "epochs": 2, "min_rows_seen": 1000}).fit(train).predict(X)
    again = mlp({"early_stopping": False, "epochs": 2, "min_rows_seen": 1000}).fit(train).predict(X)
    five = mlp({"early_stopping": False, "epochs": 5}).fit(train).predict(X)
    two = mlp({"early_stopping": False, "epochs": 2}).fit(train).predict(X)
    assert raised.shape == (300, Y.shape[1]) and raised.dtype == np.float32
    np.testing.assert_array_equal(raised, again)
    np.testing.assert_array_equal(raised, five)  # ceil(1000 / 200) = 5 epochs
    assert not np.array_equal(raised, two)


def test_onecycle_is_planned_over_the_raised_epochs():
    learner = mlp({"schedule": "onecycle", "epochs": 2, "min_rows_seen": 1280, "batch_size": 64})
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    assert learner._scheduler(optimizer, 128).total_steps == 10 * 2  # 10 epochs of 2 batches


def test_save_load_round_trip_with_decoder_and_heads(tmp_path):
    X, Y = nonlinear_data(n=200)
    learner = mlp({**DECODER, "norm": "batch", "epochs": 2}).fit(FitData(X, Y))
    learner.save(tmp_path / "m")
    loaded = mlp({**DECODER, "norm": "batch", "epochs": 2}).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), learner.predict(X))


def test_a_model_saved_without_decoder_keys_still_loads(tmp_path):
    X, Y = nonlinear_data(n=200)
    learner = mlp({"epochs": 2}).fit(FitData(X, Y))
    learner.save(tmp_path / "m")
    info_path = tmp_path / "m" / "mlp.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({k: v for k, v in info.items() if k not in ("decoder_blocks", "heads")}))
    np.testing.assert_array_equal(mlp({"epochs": 2}).load(tmp_path / "m").predict(X), learner.predict(X))


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"decoder_blocks": 1, "heads": 3}, "heads"),
        ({"heads": 0}, "heads"),
        ({"decoder_blocks": -1}, "decoder_blocks"),
        ({"decoder_width": 0}, "decoder_width"),
        ({"decoder_dropout": 1.0}, "decoder_dropout"),
        ({"aux_loss": "huber"}, "aux_loss"),
        ({"aux_weight": -0.5}, "aux_weight"),
        ({"aux_space": "genes"}, "aux_space"),
        ({"aux_fade_after": -1}, "aux_fade_after"),
        ({"schedule": "cosine"}, "schedule"),
        ({"pct_start": 0.0}, "pct_start"),
        ({"early_stopping": "sometimes"}, "early_stopping"),
        ({"min_rows_seen": -1}, "min_rows_seen"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(params, key):
    with pytest.raises(InputError) as caught:
        validate_run_config({"name": "r", "task": "cite", "learner": "mlp", "params": params}, "mlp.yaml")
    message = str(caught.value)
    assert f"'params.{key}'" in message and "\n" not in message


def test_default_values_are_those_of_the_plain_network():
    defaults = MLPParams()
    assert (defaults.decoder_blocks, defaults.heads, defaults.aux_loss, defaults.schedule) == (0, 1, "none", "constant")
    assert defaults.early_stopping and defaults.decoder_width is None and defaults.aux_fade_after is None
