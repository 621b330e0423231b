"""Level-1 on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1, on the tiny data."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from mmscel.config import load_run_config
from mmscel.distributed import dask_address, fit_fold, run_level1_dask
from mmscel.errors import InputError
from mmscel.level1 import run_level1
from mmscel.store import digest, load_array

pytestmark = pytest.mark.timeout(240)

DASK = Path(sys.executable).with_name("dask")
FEATURES = {"cite": {"svd_components": 24}, "multi": {"svd_components": 24, "target_svd_components": 12}}
RIDGE = {"task": "cite", "learner": "ridge", "params": {"alpha": 10.0}, "features": FEATURES["cite"], "n_jobs": 1}
# the shipped config: its BLAS products are large enough for OpenBLAS to use every thread it may
# an MLP that chooses its epochs on the folds: each worker makes the choice a local run makes once
MLP_FROM_FOLDS = {
    "task": "cite",
    "learner": "mlp",
    "params": {
        "hidden": [32],
        "epochs": 2,
        "batch_size": 64,
        "early_stopping": False,
        "min_rows_seen": 2000,
        "epochs_from_folds": True,
    },
    "features": FEATURES["cite"],
    "n_jobs": 1,
}
MULTI_RIDGE = yaml.safe_load((Path(__file__).parents[1] / "configs" / "multi" / "ridge.yaml").read_text())
LGBM = {
    "task": "multi",
    "learner": "lgbm",
    "params": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15, "early_stopping_rounds": 10},
    "features": FEATURES["multi"],
    "targets": {"space": "svd", "components": 6},
    "n_jobs": 1,
}
# seconds per fold on the tiny data: long enough to be killed in the middle
SLOW_MLP = {
    "task": "multi",
    "learner": "mlp",
    "params": {"hidden": [64], "epochs": 40, "patience": 100, "batch_size": 32},
    "features": FEATURES["multi"],
    "n_jobs": 1,
}


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, their logs under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.workers: list[subprocess.Popen] = []
        self.started = 0
        scheduler_file = folder / "scheduler.json"
        options = f"--host 127.0.0.1 --port 0 --no-dashboard --scheduler-file {scheduler_file}"
        self.scheduler = self._start("scheduler", "scheduler", *options.split())
        deadline = time.time() + 60
        while not scheduler_file.exists():
            assert self.scheduler.poll() is None and time.time() < deadline, self.log("scheduler")
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]

    def _start(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "w") as log:
            return subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()[-3000:]

    def ensure_workers(self, count: int = 2) -> None:
        """Start workers until ``count`` are alive (mmscel preloaded), and wait until the scheduler has them.

        No nanny, so that a killed worker stays dead; but one thread for BLAS and OpenMP, as the nanny
        of a plain ``dask worker`` sets it (a local run here uses both cores).
        """
        from distributed import Client

        env = {**os.environ, **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")}
        options = (
            f"--nthreads 1 --no-nanny --no-dashboard --host 127.0.0.1 --death-timeout 60 "
            f"--preload mmscel.distributed --local-directory {self.folder}"
        )
        self.workers = [worker for worker in self.workers if worker.poll() is None]
        while len(self.workers) < count:
            self.started += 1
            name = f"worker{self.started}"
            self.workers.append(self._start(name, "worker", self.address, *options.split(), env=env))
        alive = {worker.pid for worker in self.workers}
        with Client(self.address, timeout=30, set_as_default=False) as client:
            deadline = time.time() + 120
            while set(self._pids(client)) != alive:
                assert time.time() < deadline, self.log(f"worker{self.started}")
                time.sleep(0.2)

    @staticmethod
    def _pids(client) -> list[int]:
        try:
            return list(client.run(os.getpid, on_error="return").values())
        except OSError:  # a worker that has just died
            return []

    def stop(self) -> None:
        for process in self.workers:
            process.terminate()
        for process in [*self.workers, self.scheduler]:  # workers first: without a scheduler they wait for it
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def address(cluster) -> str:
    """The scheduler's address, with two live workers."""
    cluster.ensure_workers(2)
    return cluster.address


def write_config(folder: Path, name: str, **fields) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def assert_identical(reference: Path, other: Path) -> None:
    for name in ("oof.npy", "test.npy"):
        assert load_array(reference / name).tobytes() == load_array(other / name).tobytes(), (other, name)
    folds = [json.loads((path / "manifest.json").read_text())["folds"] for path in (reference, other)]
    assert folds[0].keys() == folds[1].keys()
    for name in folds[0]:
        a, b = ({key: value for key, value in fold[name].items() if key != "seconds"} for fold in folds)
        assert a == b, name


def test_folds_on_dask_match_a_local_run_and_are_done_once(tiny_prepared, tmp_path, address, monkeypatch):
    configs = [
        write_config(tmp_path, "ridge_refit", **RIDGE, test_predictions="refit"),
        write_config(tmp_path, "multi_ridge", **MULTI_RIDGE),
        write_config(tmp_path, "lgbm", **LGBM),
        write_config(tmp_path, "mlp_from_folds", **MLP_FROM_FOLDS),
    ]
    runs = [("cite", "ridge_refit"), ("multi", "multi_ridge"), ("multi", "lgbm"), ("cite", "mlp_from_folds")]
    for config in configs:
        run_level1(config, tiny_prepared, oof_root=tmp_path / "local")
    result = run_cli("level1", *configs, "--data", tiny_prepared, "--oof", tmp_path / "dask", "--dask", address)
    assert result.returncode == 0, result.stderr
    for task, run in runs:
        assert_identical(tmp_path / "local" / task / run, tmp_path / "dask" / task / run)
    log = (tmp_path / "dask" / "multi" / "lgbm" / "run.log").read_text()
    folds = json.loads((tmp_path / "dask" / "multi" / "lgbm" / "manifest.json").read_text())["folds"]
    for fold in folds:  # the workers' lines land in the run's log beside the driver's
        assert f"multi/lgbm fold {fold}: on the worker " in log
    assert f"multi/lgbm: {len(folds)} folds to fit on the cluster" in log
    assert "multi/multi_ridge" not in log and "cite/ridge_refit" not in log
    chosen = [
        line.split("epochs chosen on the folds: ")[1]
        for line in (tmp_path / "dask" / "cite" / "mlp_from_folds" / "run.log").read_text().splitlines()
        if "epochs chosen on the folds" in line
    ]
    assert len(set(chosen)) == 1  # every worker chose what the local run chose (its folds equal, above)

    # every fold checkpointed but the run unfinished: nothing is sent, the run is assembled from the checkpoints
    run_dir = tmp_path / "dask" / "multi" / "lgbm"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").unlink()
    monkeypatch.setenv("MMSCEL_DASK", address)
    result = run_cli("-v", "level1", *configs, "--data", tiny_prepared, "--oof", tmp_path / "dask")
    assert result.returncode == 0, result.stderr
    assert "multi/lgbm: 0 folds to fit on the cluster" in result.stderr
    assert "cite/ridge_refit: an identical run has finished; reused" in result.stderr
    again = json.loads((run_dir / "manifest.json").read_text())
    assert {k: f["seconds"] for k, f in again["folds"].items()} == {
        k: f["seconds"] for k, f in manifest["folds"].items()
    }
    assert_identical(tmp_path / "local" / "multi" / "lgbm", run_dir)


def test_a_worker_killed_mid_fold_hands_the_fold_to_the_other(tiny_prepared, tmp_path, cluster, address):
    config = write_config(tmp_path, "mlp", **SLOW_MLP)
    reference = run_level1(config, tiny_prepared, oof_root=tmp_path / "local")
    fold = tmp_path / "dask" / "multi" / "mlp" / "folds" / "fold_1"
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("mmscel.distributed")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    outcome: dict = {}

    def drive():
        try:
            outcome["result"] = run_level1_dask([config], address, tiny_prepared, oof_root=tmp_path / "dask")[0]
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        deadline = time.time() + 120
        while not (markers := list(fold.glob(".running.*.tmp"))):
            assert driver.is_alive() and time.time() < deadline, outcome
            time.sleep(0.01)
        victim = int(markers[0].name.split(".")[2])
        os.kill(victim, signal.SIGKILL)
        assert not (fold / "done.json").exists(), "fold 1 finished before its worker could be killed"
        next(worker for worker in cluster.workers if worker.pid == victim).wait(timeout=30)  # no zombie: it is gone
        driver.join(timeout=180)
        assert not driver.is_alive(), "the run did not complete after a worker was killed"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert "error" not in outcome, outcome.get("error")
    finisher = [line for line in lines if line.startswith("multi/mlp fold 1: ")]
    assert len(finisher) == 1 and not finisher[0].endswith(f":{victim}"), (victim, finisher)
    assert not list(fold.glob(".running.*")), "the killed worker's marker was not swept"
    assert_identical(reference.run_dir, outcome["result"].run_dir)


def test_an_unreachable_scheduler_is_a_one_line_error(tiny_prepared, tmp_path, monkeypatch):
    config = write_config(tmp_path, "ridge", **RIDGE)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    result = run_cli(
        "level1", config, "--data", tiny_prepared, "--oof", tmp_path / "oof", "--dask", f"127.0.0.1:{port}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port}: no Dask scheduler answers there within 1 s"
    ], result.stderr
    assert not (tmp_path / "oof" / "cite").exists()
    with pytest.raises(InputError, match="not a Dask scheduler address"):
        run_level1_dask([config], "no-port-here", tiny_prepared, oof_root=tmp_path / "oof")
    with pytest.raises(InputError, match="cite/ridge: named by two configs"):
        run_level1_dask([config, config], "no-port-here", tiny_prepared, oof_root=tmp_path / "oof")


def test_the_scheduler_comes_from_the_option_the_environment_or_the_configs(tmp_path, monkeypatch):
    monkeypatch.delenv("MMSCEL_DASK", raising=False)
    plain = load_run_config(write_config(tmp_path, "plain", **RIDGE))
    block = load_run_config(write_config(tmp_path, "block", **RIDGE, compute={"dask": "tcp://10.0.0.5:8786"}))
    other = load_run_config(write_config(tmp_path, "other", **RIDGE, compute={"dask": "tcp://10.0.0.6:8786"}))
    assert dask_address(None, [plain]) is None
    assert dask_address(None, [plain, block]) == "tcp://10.0.0.5:8786"
    assert dask_address("tcp://127.0.0.1:1", [block]) == "tcp://127.0.0.1:1"
    with pytest.raises(InputError, match="different schedulers"):
        dask_address(None, [block, other])
    monkeypatch.setenv("MMSCEL_DASK", "tcp://10.0.0.7:8786")
    assert dask_address(None, [block, other]) == "tcp://10.0.0.7:8786"
    # where the folds are fitted does not change what a run is
    assert digest(block.model_copy(update={"name": "plain"}).hashed()) == digest(plain.hashed())
    with pytest.raises(InputError, match=r"unknown key 'compute.workers' \(allowed: dask\)"):
        load_run_config(write_config(tmp_path, "typo", **RIDGE, compute={"workers": 2}))


def test_a_worker_refuses_a_fold_of_other_data_or_another_config(tiny_prepared, tmp_path):
    config = load_run_config(write_config(tmp_path, "ridge", **RIDGE))
    facts = {"config_hash": digest(config.hashed()), "data_fingerprint": "0" * 64, "fold_fingerprint": ""}
    args = (config.model_dump(mode="json"), facts, "0", str(tiny_prepared), None, str(tmp_path / "oof"))
    with pytest.raises(InputError, match="sees other data there than the driver"):
        fit_fold(*args)
    with pytest.raises(InputError, match="reads the config otherwise"):
        fit_fold(args[0], {**facts, "config_hash": "0" * 64}, *args[2:])
    left = [path for path in (tmp_path / "oof").rglob("*") if path.is_file()]
    assert left == [tmp_path / "oof" / "cite" / "ridge" / "run.log"]  # no checkpoint, no marker: the log says who tried
