"""Tuning studies in a real PostgreSQL server shared by several workers: together, after a kill -9, refused URLs."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import run_cli
from mmscel.tune.session import tune
from postgres_server import free_port
from test_tune import ALPHA, LGBM, RIDGE, States, by_state, write

pytestmark = pytest.mark.slow


def tune_command(config, data, oof, url, *options):
    command = [sys.executable, "-m", "mmscel.cli", "tune", config, "--data", data, "--oof", oof, "--storage", url]
    return [*map(str, command), *options]


def load(url, name):
    return optuna.load_study(study_name=name, storage=url)


def test_two_workers_finish_their_trials_of_one_study_together(tiny_prepared, tmp_path, postgres_url):
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    oof = tmp_path / "oof"
    options = ("--study", "shared", "--trials", "4", "--pruner", "none")
    workers = [subprocess.Popen(tune_command(config, tiny_prepared, oof, postgres_url, *options)) for _ in range(2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    study = load(postgres_url, "shared")
    assert len(study.trials) == 8 and len(by_state(study, States.COMPLETE)) == 8
    assert sorted(t.number for t in study.trials) == list(range(8))  # none lost, none numbered twice
    assert len({t.params["params.alpha"] for t in study.trials}) == 8  # none duplicated
    assert {t.user_attrs["worker"]["pid"] for t in study.trials} == {w.pid for w in workers}
    assert len({tuple(t.user_attrs["fold_scores"]) for t in study.trials}) == 1  # every trial scored every fold
    assert study.user_attrs["learner"] == "ridge" and "fold_fingerprint" in study.user_attrs
    assert not (oof / "tune" / "shared" / "study.journal").exists()  # the study is in the database only
    assert (tmp_path / "ridge.tuned.yaml").exists()


def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_its_trial_retried(tiny_prepared, tmp_path, postgres_url):
    slow = {**LGBM, "params": {**LGBM["params"], "n_estimators": 300, "early_stopping_rounds": 0}}
    config = write(tmp_path, "lgbm", **slow)
    oof = tmp_path / "oof"
    options = ("--study", "kill", "--trials", "3", "--pruner", "none", "--heartbeat", "1")
    worker = subprocess.Popen(tune_command(config, tiny_prepared, oof, postgres_url, *options), stderr=subprocess.PIPE)
    _wait_for_a_fold(postgres_url, "kill", worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed = by_state(load(postgres_url, "kill"), States.RUNNING)
    assert len(killed) == 1
    done_before = len(by_state(load(postgres_url, "kill"), States.COMPLETE))
    time.sleep(2.5)  # the killed worker's last heartbeat grows older than the grace period (2 x 1 s)
    result = tune(
        config,
        tiny_prepared,
        oof_root=oof,
        trials=2,
        study="kill",
        pruner="none",
        storage=postgres_url,
        heartbeat=1,
        plots=False,
    )
    study = load(postgres_url, "kill")
    assert [t.number for t in by_state(study, States.FAIL)] == [killed[0].number]
    assert not by_state(study, States.RUNNING) and len(by_state(study, States.COMPLETE)) == done_before + 2
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params and retried[0].state == States.COMPLETE
    assert result.configs == [tmp_path / "lgbm.tuned.yaml"]


def _wait_for_a_fold(url, name, worker, seconds=90.0):
    """Return once a RUNNING trial of the worker's study has reported a fold (so the kill lands mid-trial)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if name in optuna.study.get_all_study_names(url):
            running = by_state(load(url, name), States.RUNNING)
            if any("fold_scores" in trial.user_attrs for trial in running):
                return
        assert worker.poll() is None, worker.stderr.read()
        time.sleep(0.05)
    raise AssertionError("no trial reported a fold in time")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://mmscel:secret@127.0.0.1:{port}/nothing",
            "error: --storage: cannot use postgresql://mmscel:***@127.0.0.1:",
        ),
        ("notadatabase://somewhere", "error: --storage: not a database URL Optuna can use: notadatabase://somewhere"),
        ("mysql://u@127.0.0.1:{port}/x", "error: --storage: no driver installed for mysql://u@127.0.0.1:"),
    ],
)
def test_a_storage_that_cannot_be_used_is_one_line(tiny_prepared, tmp_path, url, message):
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    url = url.format(port=free_port())  # nobody listens there
    result = run_cli("tune", config, "--data", tiny_prepared, "--oof", tmp_path / "oof", "--storage", url)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message) and "secret" not in result.stderr
    assert not (tmp_path / "oof" / "tune").exists()


def test_a_database_study_made_from_other_data_is_refused(tiny_prepared, tmp_path, postgres_url):
    config = write(tmp_path, "ridge", **RIDGE, tune=ALPHA)
    tune(config, tiny_prepared, oof_root=tmp_path / "oof", trials=1, study="s", storage=postgres_url, plots=False)
    other = write(tmp_path / "other", "ridge", **{**RIDGE, "learner": "ridge", "task": "multi"}, tune=ALPHA)
    args = ("--data", tiny_prepared, "--oof", tmp_path / "oof", "--study", "s", "--storage", postgres_url)
    result = run_cli("tune", other, *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "study 's' was made from other data; pass another --study" in result.stderr
    assert len(load(postgres_url, "s").trials) == 1
