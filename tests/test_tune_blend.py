"""The blend objective of mmscel tune: a trial scored by the nested blend with the task's finished runs."""

import shutil

import numpy as np
import pytest
import yaml

import mmscel.level1
from conftest import run_cli
from mmscel.blend.methods import fit_weights
from mmscel.blend.objective import CellStatistics, component_statistics, dense_statistics
from mmscel.blend.run import run_level2
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.folds import read_fold_labels
from mmscel.level1 import run_level1
from mmscel.store import RunStore, digest
from mmscel.targets import space_from_manifest
from mmscel.tune.session import tune

FEATURES = {"cite": {"svd_components": 24}, "multi": {"svd_components": 24, "target_svd_components": 12}}
LGBM = {"n_estimators": 20, "learning_rate": 0.2, "num_leaves": 7, "early_stopping_rounds": 0}
ALPHA = {"params.alpha": {"type": "float", "low": 0.01, "high": 1e8, "log": True}}


def ridge(task, alpha=10.0, **fields):
    return {
        "task": task,
        "learner": "ridge",
        "params": {"alpha": alpha},
        "n_jobs": 1,
        "features": FEATURES[task],
        **fields,
    }


def write(folder, name, fields):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}))
    return path


def level1(data, oof, name, fields):
    return run_level1({"name": name, **fields}, data, oof_root=oof)


@pytest.fixture(scope="module")
def store(tiny_prepared, tmp_path_factory):
    """Finished runs: per task a ridge and an LGBM to blend with, the tuned config's own run, one on other folds."""
    oof = tmp_path_factory.mktemp("blend_objective") / "oof"
    for task in ("cite", "multi"):
        level1(tiny_prepared, oof, f"{task}_ridge", ridge(task, alpha=1000.0))  # the tuned config's own run
        level1(tiny_prepared, oof, f"{task}_ridge_b", ridge(task, alpha=300.0))
        lgbm = {**ridge(task), "learner": "lgbm", "params": LGBM, "targets": {"space": "svd", "components": 8}}
        level1(tiny_prepared, oof, f"{task}_lgbm", lgbm)
    level1(tiny_prepared, oof, "cite_random", ridge("cite", folds={"scheme": "random", "n_splits": 3}))
    return oof


@pytest.fixture
def oof(store, tmp_path):
    """A private copy of the store."""
    shutil.copytree(store, tmp_path / "oof")
    return tmp_path / "oof"


def blend_tune(config, data, oof, alphas=(10.0,), **options):
    enqueue = tuple({"params.alpha": alpha} for alpha in alphas)
    options = {"trials": len(alphas), "objective": "blend", "enqueue": enqueue, "plots": False, **options}
    return tune(config, data, oof_root=oof, **options)


def by_hand(oof, data, task, names):
    """Level-2's statistics of runs ``names``, recomputed from their stored OOF, and the fold of each cell."""
    store = RunStore(oof)
    runs = [store.run(task, name) for name in names]
    predictions = [run.oof() for run in runs]
    truth = load(task, "train", data, inputs=False).targets
    if task == "cite":
        stats = dense_statistics(predictions, np.asarray(truth, dtype=np.float64))
    else:
        basis = space_from_manifest(runs[0].target_space, store.resolve).basis
        stats = component_statistics(predictions, truth, basis)
    folds = read_fold_labels(store, runs[0].manifest["fold_file"])
    return stats, folds


@pytest.mark.parametrize("task", ["cite", "multi"])
def test_the_value_is_the_nested_blend_score_of_level2(tiny_prepared, oof, tmp_path, task):
    config = write(tmp_path / "configs", f"{task}_ridge", {**ridge(task), "tune": ALPHA})
    result = blend_tune(config, tiny_prepared, oof)
    trial = result.study.best_trial
    others = sorted(result.study.user_attrs["blend_runs"])
    assert others == [f"{task}_lgbm", f"{task}_ridge_b"]  # not the config's own run, not the other folds'
    manifest = run_level1(result.configs[0], tiny_prepared, oof_root=oof).manifest  # the trial, as a run
    assert manifest["cv"] == trial.user_attrs["cv"] and manifest["last_day"] == trial.user_attrs["last_day"]
    names = [*others, manifest["run"]]
    stats, folds = by_hand(oof, tiny_prepared, task, names)
    nested = np.empty(len(folds))
    in_fold = []
    for k in np.unique(folds):
        weights = fit_weights("slsqp", stats, np.flatnonzero(folds != k))
        nested[folds == k] = stats.per_cell(weights, np.flatnonzero(folds == k))
        in_fold.append(in_sample_fold_score(stats, folds == k))
        assert trial.user_attrs["blend_fold_scores"][str(k)] == pytest.approx(in_fold[-1], abs=1e-12)
        # three donor folds: the median pruner, which is told the running mean
        assert trial.intermediate_values[int(k)] == pytest.approx(np.mean(in_fold), abs=1e-12)
    assert trial.value == nested.mean()
    weights = dict(zip([*others, f"{task}_ridge"], fit_weights("slsqp", stats)))
    assert trial.user_attrs["blend_weights"] == pytest.approx(weights, abs=1e-9)
    level2 = run_level2({"name": "check", "method": "slsqp", "runs": {task: names}}, tiny_prepared, oof_root=oof)
    assert trial.value == level2.tasks[task].nested
    assert trial.user_attrs["blend"] == trial.value and trial.user_attrs["blend_fold_scores"]


def in_sample_fold_score(stats, cells):
    """The in-sample blend score of one fold's cells: weights fitted on the same cells."""
    rows = np.flatnonzero(cells)
    part = CellStatistics(stats.gram[rows], stats.cross[rows])
    return part.score(fit_weights("slsqp", part))


def test_trials_read_no_test_row_and_no_holdout_prediction(tiny_prepared, oof, tmp_path, monkeypatch):
    config = write(tmp_path, "cite_ridge", {**ridge("cite", test_predictions="refit"), "tune": ALPHA})
    calls = []
    fit = mmscel.level1.cross_validate

    def spy(learner, X, Y, folds, X_test=None, *args, **options):
        calls.append((X_test, [split.role for split in folds]))
        return fit(learner, X, Y, folds, X_test, *args, **options)

    monkeypatch.setattr(mmscel.level1, "cross_validate", spy)
    intact = blend_tune(config, tiny_prepared, oof).study.best_trial
    assert calls == [(None, ["cv", "cv", "cv", "holdout"])]  # no test features, no refit split
    for name in ("cite_lgbm", "cite_ridge_b"):  # the runs' test and last-day predictions become garbage
        run = oof / "cite" / name
        for path in [*run.rglob("test.npy"), run / "folds" / "fold_last_day" / "valid.npy"]:
            path.write_bytes(b"not an array")
    shutil.rmtree(oof / "tune")
    damaged = blend_tune(config, tiny_prepared, oof).study.best_trial
    assert damaged.value == intact.value and damaged.user_attrs["blend_weights"] == intact.user_attrs["blend_weights"]


def test_a_study_whose_runs_changed_is_refused_in_one_line(tiny_prepared, oof, tmp_path):
    config = write(tmp_path, "cite_ridge", {**ridge("cite"), "tune": ALPHA})
    first = blend_tune(config, tiny_prepared, oof)
    recorded = first.study.user_attrs["blend_runs"]
    assert recorded == {name: digest(RunStore(oof).run_manifest("cite", name)) for name in recorded}
    level1(tiny_prepared, oof, "cite_ridge_c", ridge("cite", alpha=30.0))
    with pytest.raises(InputError) as refused:
        blend_tune(config, tiny_prepared, oof)
    message = str(refused.value)
    assert "\n" not in message and f"study '{first.name}' was made with other finished runs" in message
    assert "(added cite_ridge_c)" in message
    RunStore(oof).remove_run("cite", "cite_ridge_c")
    RunStore(oof).remove_run("cite", "cite_ridge_b")
    level1(tiny_prepared, oof, "cite_ridge_b", ridge("cite", alpha=300.0))  # the same config, run again
    with pytest.raises(InputError, match="rerun cite_ridge_b"):
        blend_tune(config, tiny_prepared, oof)
    assert len(first.study.trials) == 1


def test_without_a_compatible_run_the_blend_objective_is_refused(tiny_prepared, oof, tmp_path):
    for name in ("cite_lgbm", "cite_ridge_b"):
        RunStore(oof).remove_run("cite", name)  # left: the config's own run and a run on other folds
    config = write(tmp_path, "cite_ridge", {**ridge("cite"), "tune": ALPHA})
    with pytest.raises(InputError) as refused:
        blend_tune(config, tiny_prepared, oof)
    assert "\n" not in str(refused.value)
    assert "--objective: blend needs finished level-1 runs of cite on the same folds" in str(refused.value)
    args = ("--data", tiny_prepared, "--oof", oof, "--objective", "blend", "--trials", "1")
    result = run_cli("tune", config, *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "blend needs finished level-1 runs of cite" in result.stderr
    assert not (oof / "tune").exists()


def test_a_twin_of_the_only_run_adds_nothing_and_a_weak_run_may_add_more(tiny_prepared, oof, tmp_path):
    for name in ("cite_lgbm", "cite_ridge_b", "cite_ridge"):
        RunStore(oof).remove_run("cite", name)
    twin = level1(tiny_prepared, oof, "cite_twin", ridge("cite", alpha=10.0)).manifest
    config = write(tmp_path, "cite_ridge", {**ridge("cite"), "tune": ALPHA})
    study = blend_tune(config, tiny_prepared, oof, alphas=(10.0, 1e8), pruner="none").study
    same, weak = study.trials
    assert same.user_attrs["cv"] == twin["cv"]  # the trial predicts what the twin predicted
    assert same.value == pytest.approx(twin["cv"], abs=1e-6)  # so every blend of the two scores as either
    assert same.user_attrs["blend_in_sample"] == pytest.approx(twin["cv"], abs=1e-6)
    assert sum(same.user_attrs["blend_weights"].values()) == pytest.approx(1.0)
    assert weak.user_attrs["cv"] < twin["cv"] - 0.1  # alone, a ridge shrunk to the mean profile is far worse
    assert weak.value > same.value  # yet, cross-fitted, it adds to the twin what the twin's duplicate cannot
    assert 0 < weak.user_attrs["blend_weights"]["cite_ridge"] < 0.5


def test_a_trial_in_another_target_space_fails_and_the_session_goes_on(tiny_prepared, oof, tmp_path):
    svd = {"features.target_svd_components": {"type": "categorical", "choices": [12, 8]}}
    config = write(tmp_path, "multi_ridge", {**ridge("multi"), "tune": svd})
    enqueue = ({"features.target_svd_components": 8}, {"features.target_svd_components": 12})
    study = tune(config, tiny_prepared, oof_root=oof, trials=2, objective="blend", enqueue=enqueue, plots=False).study
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]  # 8 components: the runs' basis is 12
    assert sorted(study.best_trial.user_attrs["blend_weights"]) == ["multi_lgbm", "multi_ridge", "multi_ridge_b"]
