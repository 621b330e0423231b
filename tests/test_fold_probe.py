"""Settings chosen on the folds: the MLP's epochs read off the folds' mean validation curve."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mmscel.config import validate_run_config
from mmscel.cv import cross_validate, make_splits
from mmscel.errors import InputError
from mmscel.fold_probe import FoldProbe
from mmscel.learners.bag import SeedBag
from mmscel.learners.base import FitData
from mmscel.learners.mlp import MLPLearner
from mmscel.learners.ridge import RidgeLearner
from mmscel.metrics import pearson_per_row
from mmscel.targets import NativeTargets
from test_learners_mlp import nonlinear_data

# 160 rows in 4 folds: 120 training rows a fold, 2 batches of 64 an epoch; 3,600 rows seen are 30 epochs,
# and at this rate the folds' mean curve peaks inside them
FROM_FOLDS = {
    "hidden": [64],
    "epochs": 3,
    "batch_size": 64,
    "lr": 0.03,
    "early_stopping": False,
    "min_rows_seen": 3600,
    "epochs_from_folds": True,
}
FOLDS = np.arange(160) % 4


def data():
    X, Y = nonlinear_data(n=220, d=12, m=10, seed=3)
    return X[:160], Y[:160], X[160:]


def probe_of(X, Y, folds=FOLDS) -> FoldProbe:
    space = NativeTargets().fit(Y)
    return FoldProbe(X, Y, make_splits(folds), space, space.transform(Y))


def test_the_chosen_count_is_the_best_of_the_mean_curve_from_epochs_on():
    X, Y, _ = data()
    learner = MLPLearner(FROM_FOLDS, seed=2, n_jobs=1)
    adapted = learner.adapt_to_folds(probe_of(X, Y))
    assert isinstance(adapted, MLPLearner) and adapted is not learner and adapted.seed == 2
    assert adapted.params.epochs_from_folds is False and adapted.params.early_stopping is False

    curves = []  # the curves again, by fits of every count on each fold
    for k in range(4):
        train, valid = FOLDS != k, FOLDS == k
        params = {**FROM_FOLDS, "min_rows_seen": 0, "epochs_from_folds": False}
        scores = []
        for epochs in range(1, 31):
            fit = MLPLearner({**params, "epochs": epochs}, seed=2 + k, n_jobs=1).fit(FitData(X[train], Y[train]))
            scores.append(pearson_per_row(Y[valid], fit.predict(X[valid])).mean())
        curves.append(scores)
    mean = np.mean(curves, axis=0)
    chosen = 3 + int(np.argmax(mean[2:]))
    assert 3 < chosen < 30  # a peak inside the range    assert adapted.params.min_rows_seen == chosen * 120
    assert adapted.epochs_for(120) == chosen and adapted.epochs_for(160) == int(np.ceil(chosen * 120 / 160))


def test_a_probe_curve_is_the_fits_of_each_count():
    X, Y, _ = data()
    watching = {**FROM_FOLDS, "early_stopping": True, "patience": 30, "epochs_from_folds": False}
    (probe,) = FoldProbe(X, Y, make_splits(FOLDS)[:1], NativeTargets().fit(Y), Y).fit(MLPLearner(watching, seed=4))
    assert len(probe.valid_scores_) == 30
    for epochs in (3, 17, 30):
        params = {**FROM_FOLDS, "epochs": epochs, "min_rows_seen": 0, "epochs_from_folds": False}
        fit = MLPLearner(params, seed=4).fit(FitData(X[FOLDS != 0], Y[FOLDS != 0]))
        score = pearson_per_row(Y[FOLDS == 0], fit.predict(X[FOLDS == 0])).mean()
        assert probe.valid_scores_[epochs - 1] == pytest.approx(score, abs=1e-6)


def test_cross_validation_with_the_choice_is_deterministic_and_logged(caplog):
    X, Y, X_test = data()
    with caplog.at_level(logging.INFO, logger="mmscel.learners.mlp"):
        first = cross_validate(MLPLearner(FROM_FOLDS, seed=1, n_jobs=1), X, Y, FOLDS, X_test)
    second = cross_validate(MLPLearner(FROM_FOLDS, seed=1, n_jobs=1), X, Y, FOLDS, X_test)
    assert first.oof.shape == (160, 10) and first.test.shape == (60, 10) and first.oof.dtype == np.float32
    assert first.oof.tobytes() == second.oof.tobytes() and first.test.tobytes() == second.test.tobytes()
    epochs = {result.info["epochs"] for result in first.folds.values()}
    assert len(epochs) == 1 and 3 <= epochs.pop() <= 30
    assert f"epochs chosen on the folds: {first.folds['0'].info['epochs']} of 3-30 (" in caplog.text

    fixed = dict(FROM_FOLDS, epochs_from_folds=False, min_rows_seen=0, epochs=first.folds["0"].info["epochs"])
    plain = cross_validate(MLPLearner(fixed, seed=1, n_jobs=1), X, Y, FOLDS, X_test)
    assert plain.oof.tobytes() == first.oof.tobytes()  # the chosen count, fitted as any fixed count is


def test_without_room_to_choose_nothing_is_probed():
    X, Y, X_test = data()
    few = dict(FROM_FOLDS, min_rows_seen=300)  # 300 rows are fewer than 3 epochs of a fold
    learner = MLPLearner(few, seed=0, n_jobs=1)
    assert learner.adapt_to_folds(probe_of(X, Y)) is learner
    plain = dict(few, epochs_from_folds=False, min_rows_seen=0)
    a = cross_validate(learner, X, Y, FOLDS, X_test)
    b = cross_validate(MLPLearner(plain, seed=0, n_jobs=1), X, Y, FOLDS, X_test)
    assert a.oof.tobytes() == b.oof.tobytes() and a.test.tobytes() == b.test.tobytes()


def test_other_learners_and_an_mlp_without_the_option_choose_nothing():
    X, Y, _ = data()
    probe = probe_of(X, Y)
    for learner in (RidgeLearner({"alpha": 1.0}), MLPLearner(dict(FROM_FOLDS, epochs_from_folds=False))):
        assert learner.adapt_to_folds(probe) is learner


def test_a_bag_takes_its_first_members_choice():
    X, Y, _ = data()
    bag = SeedBag(MLPLearner, MLPLearner.Params(**FROM_FOLDS), 2, seed=2, n_jobs=1)
    adapted = bag.adapt_to_folds(probe_of(X, Y))
    alone = MLPLearner(FROM_FOLDS, seed=2, n_jobs=1).adapt_to_folds(probe_of(X, Y))
    assert isinstance(adapted, SeedBag) and adapted.seed == 2 and len(adapted.members) == 2
    assert [m.params for m in adapted.members] == [alone.params, alone.params]


@pytest.mark.parametrize(
    "params",
    [
        {"epochs_from_folds": True, "early_stopping": False},  # no min_rows_seen
        {"epochs_from_folds": True, "min_rows_seen": 1000},  # early stopping on
        {"epochs_from_folds": True, "min_rows_seen": 1000, "early_stopping": False, "schedule": "onecycle"},
        {"epochs_from_folds": True, "min_rows_seen": 1000, "early_stopping": False, "aux_fade_after": 5},
        {"epochs_from_folds": "often"},
    ],
)
def test_a_bad_combination_is_one_line_naming_the_key(params):
    with pytest.raises(InputError) as caught:
        validate_run_config({"name": "r", "task": "cite", "learner": "mlp", "params": params}, "mlp.yaml")
    message = str(caught.value)
    assert "'params.epochs_from_folds'" in message and "\n" not in message


class KeptFolds:
    """Checkpoints in memory: the splits of an earlier, interrupted cross-validation."""

    def __init__(self, results):
        self.results = dict(results)

    def load(self, name):
        return self.results.get(name)

    def save(self, result, learner, space):
        self.results[result.name] = result


def test_a_resumed_cross_validation_makes_the_same_choice():
    X, Y, X_test = data()
    whole = cross_validate(MLPLearner(FROM_FOLDS, seed=1, n_jobs=1), X, Y, FOLDS, X_test)
    interrupted = KeptFolds({name: whole.folds[name] for name in ("0", "1")})  # killed after two folds
    resumed = cross_validate(MLPLearner(FROM_FOLDS, seed=1, n_jobs=1), X, Y, FOLDS, X_test, checkpoints=interrupted)
    assert resumed.oof.tobytes() == whole.oof.tobytes() and resumed.test.tobytes() == whole.test.tobytes()
    assert resumed.folds["3"].info["epochs"] == whole.folds["3"].info["epochs"]
