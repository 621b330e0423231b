"""Tuning sessions: search spaces, pruning fold by fold, resume, kill -9, tuned configs, refusals."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
import yaml

from conftest import run_cli
from mmscel.config import validate_run_config
from mmscel.data.cache import prepare
from mmscel.data.synth.generate import generate
from mmscel.errors import InputError
from mmscel.learners import LEARNERS
from mmscel.level1 import run_level1
from mmscel.store import digest
from mmscel.tune.journal import journal_study
from mmscel.tune.session import tune
from mmscel.tune.space import search_space, with_values

RIDGE = {"task": "cite", "learner": "ridge", "params": {"alpha": 10.0}, "features": {"svd_components": 24}, "n_jobs": 1}
LGBM = {
    "task": "cite",
    "learner": "lgbm",
    "params": LEARNERS.get("lgbm").quick_params,
    "features": {"svd_components": 24},
    "targets": {"space": "svd", "components": 8},
    "n_jobs": 1,
}
ALPHA = {"params.alpha": {"type": "float", "low": 0.01, "high": 1e8, "log": True}}
States = optuna.trial.TrialState


def write(folder, name, **fields):
    path = folder / f"{name}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields))
    return path


def load_study(oof, name):
    return journal_study(oof / "tune" / name / "study.journal", name)


def by_state(study, state):
    return [trial for trial in study.trials if trial.state == state]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"params.alpah": ALPHA["params.alpha"]}, "unknown key 'tune.params.alpah' (allowed: params.alpha,"),
        ({"alpha": ALPHA["params.alpha"]}, "unknown key 'tune.alpha' (allowed: params.<key>, features.<key>"),
        ({"params.alpha": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log scale needs low > 0"),
        ({"params.alpha": {"type": "float", "low": -1.0, "high": 1.0}}, "the value -1.0 is refused"),
        ({"params.alpha": {"type": "flot", "low": 1, "high": 2}}, "'tune.params.alpha.type': must be one of"),
        ({"params.alpha": {"type": "float", "low": 1, "high": 2, "lg": True}}, "unknown key 'tune.params.alpha.lg'"),
        ({"features.svd_components": {"type": "int", "low": 0, "high": 8}}, "the value 0 is refused"),
    ],
)
def test_a_bad_search_space_is_refused_in_one_line(tmp_path, block, message):
    config = write(tmp_path, "ridge", **RIDGE, tune=block)
    with pytest.raises(InputError) as refused:
        tune(config, tmp_path / "nodata", oof_root=tmp_path / "oof")
    assert "\n" not in str(refused.value) and message in str(refused.value) and str(config) in str(refused.value)
    assert not (tmp_path / "oof").exists()


def test_a_bad_search_space_exits_2_on_the_command_line(tmp_path):
    config = write(tmp_path, "ridge", **RIDGE, tune={"params.alpah": ALPHA["params.alpha"]})
    result = run_cli("tune", config, "--data", tmp_path / "nodata", "--oof", tmp_path / "oof")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "unknown key 'tune.params.alpah' (allowed: params.alpha, params.fit_intercept" in result.stderr
    assert not (tmp_path / "oof").exists()


def test_the_tune_block_never_changes_a_config_hash():
    plain = validate_run_config({"name": "r", **RIDGE})
    searched = validate_run_config({"name": "r", **RIDGE, "tune": ALPHA})
    assert searched.tune is not None and "tune" not in searched.model_dump()
    assert digest(plain.hashed()) == digest(searched.hashed())
    trial = with_values(searched, {"params.alpha": 10.0})
    assert trial.tune is None and digest(trial.hashed()) == digest(plain.hashed())


@pytest.mark.parametrize("task", ["cite", "multi"])
def test_every_learner_ships_a_valid_default_space(task):
    for name in LEARNERS.names():
        space = search_space(validate_run_config({"name": "x", "task": task, "learner": name}))
        assert space and all(key.startswith(("params.", "features.", "targets.")) for key in space)


@pytest.mark.parametrize(
    ("pruner", "n_splits", "pruned_after"), [("wilcoxon", 6, 4), ("median", 6, 1), ("wilcoxon", 3, 1)]
)
def test_a_weak_trial_is_pruned_after_its_first_folds(tiny_prepared, tmp_path, pruner, n_splits, pruned_after):
    """Wilcoxon's one-sided p first falls below 0.1 at n = 4 folds; on 3 folds the median pruner stands in."""
    config = write(tmp_path, "ridge", **RIDGE, folds={"scheme": "random", "n_splits": n_splits}, tune=ALPHA)
    good = [{"params.alpha": a} for a in (10.0, 20.0)]
    result = tune(
        config,
        tiny_prepared,
        oof_root=tmp_path / "oof",
        trials=3,
        pruner=pruner,
        enqueue=(*good, {"params.alpha": 1e8}),
        plots=False,
    )
    weak = result.study.trials[2]
    assert [t.state for t in result.study.trials] == [States.COMPLETE, States.COMPLETE, States.PRUNED]
    folds = weak.user_attrs["fold_scores"]
    assert (
        len(folds) == len(weak.intermediate_values) < n_splits and weak.user_attrs["pruned_at_fold"] == list(folds)[-1]
    )
    assert len(folds) == pruned_after
    assert "last_day" not in weak.user_attrs
    assert sorted(p.name for p in (tmp_path / "oof").iterdir()) == ["features", "folds", "tune"]  # no oof/cite/


def test_the_wilcoxon_pruner_is_kept_only_where_it_can_prune():
    from mmscel.tune.session import pruner_for

    assert [pruner_for("wilcoxon", n) for n in (2, 3, 4, 5)] == ["median", "median", "wilcoxon", "wilcoxon"]
    assert pruner_for("none", 3) == "none" and pruner_for("median", 6) == "median"


def test_resume_adds_trials_and_the_tuned_config_reproduces_its_trial(tiny_prepared, tmp_path):
    config = write(tmp_path / "configs" / "cite", "ridge", **RIDGE, tune=ALPHA)
    first = tune(config, tiny_prepared, oof_root=tmp_path / "oof", trials=2, plots=False)
    again = tune(config, tiny_prepared, oof_root=tmp_path / "oof", trials=2, plots=False)
    assert again.name == first.name and len(again.study.trials) == 4
    alphas = [t.params["params.alpha"] for t in again.study.trials]
    assert len(set(alphas)) == 4  # the resumed session does not repeat the first one's draws
    assert again.configs == [config.parent / "ridge.tuned.yaml"]
    tuned = yaml.safe_load(again.configs[0].read_text())
    assert tuned["name"] == "cite_ridge_tuned" and "tune" not in tuned
    best = again.study.best_trial
    manifest = run_level1(again.configs[0], tiny_prepared, oof_root=tmp_path / "oof").manifest
    assert manifest["cv"] == best.value and manifest["last_day"] == best.user_attrs["last_day"]
    assert {k: f["score"] for k, f in manifest["folds"].items() if k.isdigit()} == best.user_attrs["fold_scores"]


def test_keep_k_configs_from_the_command_line_reproduce_lgbm_trials(tiny_prepared, tmp_path):
    config = write(tmp_path, "lgbm", **LGBM)
    args = ("--data", tiny_prepared, "--oof", tmp_path / "oof")
    result = run_cli("tune", config, *args, "--trials", "2", "--keep", "2", "--pruner", "none")
    assert result.returncode == 0, result.stderr
    assert "COMPLETE" in result.stdout and "wrote" in result.stdout
    paths = [tmp_path / "lgbm.tuned1.yaml", tmp_path / "lgbm.tuned2.yaml"]
    names = [yaml.safe_load(path.read_text())["name"] for path in paths]
    assert names == ["lgbm_tuned1", "lgbm_tuned2"]
    folder = next((tmp_path / "oof" / "tune").iterdir())
    assert {"optimization_history.html", "intermediate_values.html", "parallel_coordinate.html"} <= {
        p.name for p in folder.iterdir()
    }
    study = load_study(tmp_path / "oof", folder.name)
    second = sorted(study.trials, key=lambda t: -t.value)[1]
    manifest = run_level1(paths[1], tiny_prepared, oof_root=tmp_path / "oof").manifest
    assert manifest["cv"] == second.value
    report = run_cli("tune", config, *args, "--report")
    assert report.returncode == 0 and "2 trials" in report.stdout, report.stderr


def test_a_killed_session_restarts_and_retries_the_killed_trial(tiny_prepared, tmp_path):
    slow = {**LGBM, "params": {**LGBM["params"], "n_estimators": 300, "early_stopping_rounds": 0}}
    config = write(tmp_path, "lgbm", **slow)
    oof = tmp_path / "oof"
    command = [sys.executable, "-m", "mmscel.cli", "tune", config, "--data", tiny_prepared, "--oof", oof]
    worker = subprocess.Popen([*map(str, command), "--trials", "3", "--pruner", "none"], stderr=subprocess.PIPE)
    journal = _wait_for_a_fold(oof, worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    name = journal.parent.name
    killed = by_state(load_study(oof, name), States.RUNNING)
    assert len(killed) == 1
    done_before = len(by_state(load_study(oof, name), States.COMPLETE))
    study = tune(config, tiny_prepared, oof_root=oof, trials=2, pruner="none", plots=False).study
    assert [t.number for t in by_state(study, States.FAIL)] == [killed[0].number]
    assert not by_state(study, States.RUNNING) and len(by_state(study, States.COMPLETE)) == done_before + 2
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params and retried[0].state == States.COMPLETE


def _wait_for_a_fold(oof, worker, seconds=60.0):
    """The journal of the worker's study, once a trial has reported a fold (so the kill lands mid-trial)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for journal in (oof / "tune").glob("*/study.journal") if (oof / "tune").exists() else ():
            if "fold_scores" in journal.read_text():
                return journal
        assert worker.poll() is None, worker.stderr.read()
        time.sleep(0.02)
    raise AssertionError("no trial reported a fold in time")


def test_a_study_made_from_other_data_is_refused(tiny_prepared, tmp_path):
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    tune(config, tiny_prepared, oof_root=tmp_path / "oof", trials=1, study="shared", plots=False)
    other = tmp_path / "other"
    generate(other, "tiny", seed=1, raw=True)
    prepare(other)
    result = run_cli("tune", config, "--data", other, "--oof", tmp_path / "oof", "--study", "shared", "--trials", "1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "study 'shared' was made from other data" in result.stderr
    assert len(load_study(tmp_path / "oof", "shared").trials) == 1
    assert np.isfinite(load_study(tmp_path / "oof", "shared").best_value)


def test_facts_are_read_whole_even_before_their_separate_attributes_are_written():
    """A worker that opens the study while another records its facts sees all of them or none."""
    import optuna

    from mmscel.errors import InputError
    from mmscel.tune.objective import FACTS_ATTR, recorded_facts
    from mmscel.tune.session import _check_facts

    facts = {"task": "cite", "learner": "ridge", "objective": "cv", "data_fingerprint": "a", "fold_fingerprint": "f"}
    study = optuna.create_study(direction="maximize")
    assert recorded_facts(study) is None
    study.set_user_attr(FACTS_ATTR, facts)  # the first write of the recording worker, nothing else yet
    with pytest.raises(InputError, match="from other data"):
        _check_facts(study, {**facts, "data_fingerprint": "b"}, "journal")
    _check_facts(study, dict(facts), "journal")
    assert recorded_facts(study) == facts and "task" not in study.user_attrs  # not recorded again


def test_a_study_holds_trials_of_one_setting_of_the_keys_it_does_not_search(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    first = tune(config, tiny_prepared, oof_root=oof, trials=0, plots=False).name
    assert (
        tune(
            write(tmp_path, "ridge", **{**RIDGE, "params": {"alpha": 3.0}}, tune=ALPHA),
            tiny_prepared,
            oof_root=oof,
            trials=0,
            plots=False,
        ).name
        == first
    )  # the searched key's value does not count
    other = write(tmp_path, "ridge", **{**RIDGE, "params": {"alpha": 10.0, "standardize": False}}, tune=ALPHA)
    assert tune(other, tiny_prepared, oof_root=oof, trials=0, plots=False).name != first
    with pytest.raises(InputError, match="with other fixed settings"):
        tune(other, tiny_prepared, oof_root=oof, trials=0, study=first, plots=False)
