"""Scheduling cost of level-1 on Dask: the same runs locally and on 1 and 2 Dask workers, in one session.

    python bench/dask_overhead.py [--scale tiny] [--configs configs/cite/ridge.yaml ...] [--repeats 3] [--out bench/out]

The runs' features and fold files are built once into a base store; every measured run starts from
a fresh store holding a copy of them, so it fits every fold and builds nothing. The three modes
alternate in a rotating order, ``--repeats`` times, after one unmeasured run on each cluster (as the
base store's build warms this process for the local runs). A local run is :func:`mmscel.level1.run_level1`
in this process, one config after the other; a Dask run is :func:`mmscel.distributed.run_level1_dask`
from this process against a scheduler and ``dask worker --nthreads 1 --no-nanny --preload
mmscel.distributed`` processes on 127.0.0.1 (two clusters, started before the first run: one
worker, two workers). After each run its manifests are deleted and the same command run again:
every fold is then found done, so this *fixed* wall time is what the command costs whatever the
number of folds (connecting, checking the runs, loading their inputs, assembling them from the
checkpoints). Reported per mode, medians over the repeats: the wall seconds of the run and of its
fixed part, the sum of the folds' fit seconds (as their checkpoints record them), and the *cost
per fold task* ``(workers x (wall - fixed) - sum of fits) / tasks``: the worker time a task costs
beyond its fit (sending it, loading the run's inputs on a worker that has not yet, writing the
checkpoint, and the workers' idle time while the last tasks run). So a run of T folds of F
seconds on W workers takes about ``fixed + T x (F + cost) / W``. Every Dask run's predictions are
checked bit-identical to the local run's; the 1-minute load average is recorded after each run.
Writes ``OUT/dask_overhead.json`` (section = scale and configs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as under the command line: the learners run in this process

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, add_out_argument, markdown_table, prepared, publish, synthetic_competition

DASK = Path(sys.executable).with_name("dask")
DEFAULT_CONFIGS = ["configs/cite/ridge.yaml", "configs/multi/ridge.yaml"]
MEDIANS = ("wall_s", "fixed_s", "fit_s", "cost_per_task_s", "load")


class Cluster:
    """A scheduler and ``workers`` worker processes on 127.0.0.1, logs under ``folder``."""

    def __init__(self, folder: Path, workers: int):
        folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = folder / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        options = f"--host 127.0.0.1 --port 0 --no-dashboard --scheduler-file {scheduler_file}"
        self.processes = [_start(folder / "scheduler.log", "scheduler", *options.split())]
        deadline = time.time() + 120
        while not scheduler_file.exists():
            if time.time() > deadline:
                raise RuntimeError(f"no scheduler after 120 s: see {folder / 'scheduler.log'}")
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        options = "--nthreads 1 --no-nanny --no-dashboard --host 127.0.0.1 --preload mmscel.distributed"
        options += f" --local-directory {folder}"
        for k in range(workers):
            self.processes.append(_start(folder / f"worker{k}.log", "worker", self.address, *options.split()))
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=300)

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first: without a scheduler they wait for it
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(log: Path, *args: str) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen([str(DASK), *args], stdout=handle, stderr=subprocess.STDOUT)


def fresh_store(base: Path, target: Path) -> Path:
    """A store holding only the base store's features and fold files (those it has)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in ("features", "folds"):
        if (base / part).exists():
            shutil.copytree(base / part, target / part)
    return target


def measure(mode: str, configs, data: Path, store: Path, address: str | None, workers: int) -> dict:
    """One run of every config in ``mode``: wall seconds, fold tasks and the folds' fit seconds."""
    from mmscel.distributed import run_level1_dask
    from mmscel.level1 import run_level1

    def run_all():
        started = time.perf_counter()
        if address is None:
            results = [run_level1(config, data, oof_root=store) for config in configs]
        else:
            results = run_level1_dask(configs, address, data, oof_root=store)
        return results, time.perf_counter() - started

    results, wall = run_all()
    fits = [fold["seconds"] for result in results for fold in result.manifest["folds"].values()]
    for result in results:  # unfinished runs whose folds are all done
        (result.run_dir / "manifest.json").unlink()
    again, fixed = run_all()
    assert all(not result.reused for result in again)
    return {
        "mode": mode,
        "workers": workers,
        "wall_s": wall,
        "fixed_s": fixed,
        "tasks": len(fits),
        "fit_s": sum(fits),
        "cost_per_task_s": (workers * (wall - fixed) - sum(fits)) / len(fits),
        "load": os.getloadavg()[0],
        "runs": {f"{r.record.task}/{r.record.name}": str(r.run_dir) for r in results},
    }


def identical(local: dict, other: dict) -> bool:
    """Whether two measurements wrote bit-identical predictions for every run."""
    from mmscel.store import load_array

    return all(
        load_array(Path(local["runs"][run]) / name).tobytes() == load_array(Path(path) / name).tobytes()
        for run, path in other["runs"].items()
        for name in ("oof.npy", "test.npy")
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="run configs (paths from the project)")
    parser.add_argument("--repeats", type=int, default=3)
    add_out_argument(parser)
    args = parser.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.WARNING)

    from mmscel.config import load_run_config
    from mmscel.level1 import run_level1

    out = args.out.resolve()
    data = prepared(synthetic_competition(args.scale, out), out)
    work = out / "dask_overhead"
    configs = [load_run_config(ROOT / path) for path in args.configs]
    base = work / "base"
    shutil.rmtree(base, ignore_errors=True)
    for config in configs:  # features and fold files, once; it also warms this process's imports
        run_level1(config, data, oof_root=base)
    clusters = {1: Cluster(work / "cluster1", 1), 2: Cluster(work / "cluster2", 2)}
    modes = [("local", None, 1), ("dask, 1 worker", 1, 1), ("dask, 2 workers", 2, 2)]
    measured = {mode: [] for mode, _, _ in modes}
    try:
        for workers, cluster in clusters.items():  # the workers' first folds import the learners' libraries
            measure("warm-up", configs, data, fresh_store(base, work / "runs" / "warm-up"), cluster.address, workers)
        for repeat in range(args.repeats):
            for mode, cluster, workers in modes[repeat % 3 :] + modes[: repeat % 3]:
                store = fresh_store(base, work / "runs" / f"{mode.replace(' ', '').replace(',', '_')}-{repeat}")
                address = clusters[cluster].address if cluster else None
                result = measure(mode, configs, data, store, address, workers)
                measured[mode].append(result)
                print(f"repeat {repeat}: {mode}: {result['wall_s']:.2f} s, {result['tasks']} tasks", flush=True)
    finally:
        for cluster in clusters.values():
            cluster.stop()
    for mode, results in measured.items():
        for k, result in enumerate(results):
            if not identical(measured["local"][k], result):
                raise RuntimeError(f"{mode}, repeat {k}: predictions differ from the local run's")

    local_cost = statistics.median(r["cost_per_task_s"] for r in measured["local"])
    rows, summary = [], {}
    for mode, _, workers in modes:
        results = measured[mode]
        medians = {key: statistics.median(r[key] for r in results) for key in MEDIANS}
        summary[mode] = {**medians, "runs": results}
        extra = "" if mode == "local" else f"{medians['cost_per_task_s'] - local_cost:+.3f}"
        cells = [f"{medians[key]:.2f}" for key in ("wall_s", "fixed_s", "fit_s")]
        cells += [f"{medians['cost_per_task_s']:.3f}", extra, f"{medians['load']:.1f}"]
        rows.append([mode, workers, results[0]["tasks"], *cells])
    headers = ["mode", "workers", "fold tasks", "wall (s)", "fixed (s)", "fold fits (s)", "cost per task (s)"]
    headers += ["vs local (s)", "load (1 min)"]
    text = markdown_table(headers, rows)
    text += f"\n\nmedians of {args.repeats} repeats; predictions bit-identical to the local run's in every repeat"
    section = f"{args.scale}: {' '.join(args.configs)}"
    return publish(out, "dask_overhead", section, summary, text)


if __name__ == "__main__":
    raise SystemExit(main())
