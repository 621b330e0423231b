"""Bad configs, bad manifests, paths the system refuses, and a kill while holding a run's lock: exit 2, one line."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import run_cli
from mmscel.errors import InputError
from mmscel.level1 import run_level1
from mmscel.store import RunStore

QUICK = {"task": "cite", "learner": "ridge", "features": {"svd_components": 8}, "n_jobs": 1}


def one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write(path, fields):
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"folds": {"scheme": "random", "n_splits": 10**9}}, "n_splits"),
        ({"features": {"svd_components": 10**9}}, "svd_components"),
        ({"validation_fraction": float("nan")}, "validation_fraction"),
        ({"seeds": 10**6}, "seeds"),
        ({"learner": "nope"}, "unknown learner 'nope'"),
        ({"params": {"alpha": float("inf")}}, "params.alpha"),
        ({"learner": "lgbm", "params": {"n_estimators": 10**12}}, "params.n_estimators"),
        ({"learner": "lgbm", "params": {"num_leaves": 10**9}}, "params.num_leaves"),
        ({"learner": "xgb", "params": {"max_depth": 10**6}}, "params.max_depth"),
        ({"learner": "mlp", "params": {"hidden": [10**9]}}, "params.hidden"),
        ({"folds": {"scheme": "weekly"}}, "unknown fold scheme 'weekly'"),
    ],
)
def test_config_values_out_of_range_are_one_line_errors(tiny_prepared, tmp_path, fields, fragment):
    config = write(tmp_path / "c.yaml", {**QUICK, **fields})
    one_line_error(run_cli("level1", config, "--data", tiny_prepared, "--oof", tmp_path / "oof"), "c.yaml", fragment)
    assert not (tmp_path / "oof").exists()


def test_a_config_that_is_not_utf8_or_not_a_file(tiny_prepared, tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    one_line_error(run_cli("level1", latin, "--data", tiny_prepared), "latin.yaml", "not UTF-8")
    one_line_error(run_cli("level1", tmp_path, "--data", tiny_prepared), "is not a file")
    blend = tmp_path / "blend.yaml"
    blend.write_text("method: optuna\nn_trials: .inf\n")
    one_line_error(run_cli("level2", blend, "--data", tiny_prepared, "--oof", tmp_path / "oof"), "n_trials")


def test_a_manifest_that_is_not_an_object_is_refused(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    run_level1(QUICK, tiny_prepared, oof_root=oof)
    (oof / "cite" / "cite_ridge" / "manifest.json").write_text("[1, 2]")
    one_line_error(run_cli("runs", "--oof", oof), "manifest.json", "a JSON list")


def test_a_path_the_system_refuses_names_the_path(tiny_prepared, tmp_path):
    blocker = tmp_path / "oof"
    blocker.write_text("a file where the store should be")
    config = write(tmp_path / "c.yaml", QUICK)
    one_line_error(run_cli("level1", config, "--data", tiny_prepared, "--oof", blocker), str(blocker))
    assert blocker.read_text() == "a file where the store should be"


HOLD_LOCK = """
import sys, time
from mmscel.store import RunStore
with RunStore(sys.argv[1]).run_lock("cite", "cite_ridge"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_killed_lock_holder_does_not_block_the_next_run(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(oof)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(InputError, match="is running \\(pid"):
            with RunStore(oof).run_lock("cite", "cite_ridge", wait=False):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    started = time.perf_counter()
    result = run_level1(QUICK, tiny_prepared, oof_root=oof)
    assert not result.reused and time.perf_counter() - started < 120


def test_two_processes_of_one_run_do_the_work_once(tiny_prepared, tmp_path):
    (tmp_path / "cite").mkdir()
    config = write(tmp_path / "cite" / "ridge.yaml", QUICK)
    command = [sys.executable, "-m", "mmscel.cli", "level1", str(config), "--data", str(tiny_prepared)]
    command += ["--oof", str(tmp_path / "oof")]
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab")
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert sum("(reused)" in out for out, _ in outputs) == 1  # the second waited for the first, then reused it
