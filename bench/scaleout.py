"""Level-1 past one machine: every shipped config on 1 and 2 Dask workers, and a model of 1-16 workers.

    python bench/scaleout.py --measure [--scale small]   # measured on 1 and 2 workers, against the model
    python bench/scaleout.py --model [--scale full]      # the model on the end-to-end run's folds

*Model.* ``mmscel level1 CONFIG... --dask`` prepares the runs one after the other (checks them and
loads their inputs) and sends each run's folds as soon as the run is prepared; the scheduler gives a
fold to the worker free first; a worker keeps the inputs of the run whose fold it fitted last, so it
loads a run's inputs when its fold follows one of another run; the driver assembles every run after
the last fold. The model replays that order with measured costs: each fold its fit seconds plus the
scheduling cost per task (bench/dask_overhead.py), each run's *setup* (what a local run spends outside
its folds: loading, checking, writing) for preparing it, for every worker's first fold of it, and for
assembling it. Since a setup is counted three times where a local run pays it once, the model errs
on the slow side.

``--measure``: every shipped ``configs/<task>/<learner>.yaml`` at ``n_jobs: 1`` (so that two workers on
the 2 cores are two one-core machines) on a fresh store holding the features and fold files of
``OUT/<scale>``, fitted by :func:`mmscel.distributed.run_level1_dask` on a cluster of one ``dask worker
--nthreads 1`` process, then on a cluster of two. After the one-worker run, each run is assembled again
locally with its folds done (its manifest deleted): the run's setup. The model, given the one-worker
run's fold seconds and these setups, predicts both measured walls; both runs' predictions are checked
bit-identical.

``--model``: the ten runs of the full-size end-to-end store (``OUT/oof_e2e_<scale>``, bench/end_to_end.py;
each fold fitted at the shipped ``n_jobs: 2`` on this 2-core machine, so a worker here is one such
machine): setup = the run's wall minus its folds' seconds, from its manifest. The stages that stay on
one machine (features, level-2, submit) come from ``OUT/end_to_end.json``. For 1, 2, 4, 8 and 16
workers: level-1's modelled wall, the one-machine stages, the sum, and level-1's share of it.

Writes section ``measure:<scale>`` or ``model:<scale>`` of ``OUT/scaleout.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as under the command line: the learners run in this process

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    SHIPPED_LEARNERS,
    SHIPPED_TASKS,
    add_out_argument,
    load_result,
    markdown_table,
    prepared,
    publish,
    stage_totals,
    synthetic_competition,
)
from dask_overhead import Cluster, fresh_store, identical

WORKERS = (1, 2, 4, 8, 16)
ONE_MACHINE_STAGES = ("prepare", "features_cite", "features_multi", "level2", "submit")


@dataclass(frozen=True)
class RunCost:
    """What one level-1 run costs: its setup outside the folds, and each fold's fit, in seconds."""

    name: str
    setup_s: float
    folds_s: tuple[float, ...]


def level1_wall(runs: list[RunCost], workers: int, per_task_s: float) -> float:
    """Modelled wall seconds of ``mmscel level1 --dask`` with ``runs`` on ``workers`` workers (see the module)."""
    free, last, released = [0.0] * workers, [None] * workers, 0.0
    for run in runs:
        released += run.setup_s
        for fold in run.folds_s:
            k = min(range(workers), key=free.__getitem__)
            load = run.setup_s if last[k] != run.name else 0.0
            free[k] = max(free[k], released) + load + fold + per_task_s
            last[k] = run.name
    return max(*free, released) + sum(run.setup_s for run in runs)


def run_costs(store: Path, setups: dict[str, float] | None = None) -> list[RunCost]:
    """The shipped runs of ``store`` in the order the configs are sent; setups from ``setups`` or the manifests."""
    runs = []
    for task in SHIPPED_TASKS:
        for learner in SHIPPED_LEARNERS:
            name = f"{task}_{learner}"
            manifest = json.loads((store / task / name / "manifest.json").read_text())
            folds = tuple(fold["seconds"] for fold in manifest["folds"].values())
            setup = setups[name] if setups else manifest["wall_seconds"] - sum(folds)
            runs.append(RunCost(name, max(setup, 0.0), folds))
    return runs


def per_task_cost(out: Path) -> float:
    """The scheduling cost per fold task with two workers, from bench/dask_overhead.py's saved medians."""
    saved = json.loads((out / "dask_overhead.json").read_text())["sections"]
    results = [entry["result"] for entry in saved.values()]
    return max(result["dask, 2 workers"]["cost_per_task_s"] for result in results)


# ----------------------------------------------------------------------------- measured on 1 and 2 workers


def one_thread_configs() -> list:
    """Every shipped run config, at ``n_jobs: 1``."""
    from mmscel.config import load_run_config

    paths = [ROOT / "configs" / task / f"{learner}.yaml" for task in SHIPPED_TASKS for learner in SHIPPED_LEARNERS]
    return [load_run_config(path, ["n_jobs=1"]) for path in paths]


def base_store(configs: list, data: Path, store: Path) -> Path:
    """A store with the features of every config (built here, untimed)."""
    import mmscel

    for config in configs:
        mmscel.build_features(config.task, config.feature_config(), data, store=store, seed=config.seed)
    return store


def dask_run(configs: list, data: Path, store: Path, cluster: Cluster) -> dict:
    """Every config fitted on ``cluster`` into ``store``: wall seconds and the runs' folders."""
    from mmscel.distributed import run_level1_dask

    started = time.perf_counter()
    results = run_level1_dask(configs, cluster.address, data, oof_root=store)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "load": os.getloadavg()[0], "runs": {r.record.name: str(r.run_dir) for r in results}}


def setups(configs: list, data: Path, store: Path) -> dict[str, float]:
    """Each run's setup: a local ``run_level1`` of it with every fold done (its manifest deleted)."""
    from mmscel.level1 import run_level1

    seconds = {}
    for config in configs:
        (store / config.task / config.name / "manifest.json").unlink()
        started = time.perf_counter()
        run_level1(config, data, oof_root=store)
        seconds[config.name] = time.perf_counter() - started
    return seconds


def measure(args: argparse.Namespace) -> int:
    logging.getLogger("distributed").setLevel(logging.WARNING)
    out = args.out.resolve()
    data = prepared(synthetic_competition(args.scale, out), out)
    work = out / "scaleout"
    configs = one_thread_configs()
    base = base_store(configs, data, work / "base")
    measured = {}
    for workers in (1, 2):
        cluster = Cluster(work / f"cluster{workers}", workers)
        try:
            store = fresh_store(base, work / "runs" / f"workers{workers}")
            measured[workers] = dask_run(configs, data, store, cluster)
        finally:
            cluster.stop()
        print(f"{workers} worker(s): {measured[workers]['wall_s']:.1f} s", flush=True)
    if not identical(measured[1], measured[2]):
        raise RuntimeError("the two-worker run's predictions differ from the one-worker run's")
    store = work / "runs" / "workers1"
    runs = run_costs(store, setups(configs, data, store))
    cost = per_task_cost(out)
    rows = []
    for workers, result in measured.items():
        model = level1_wall(runs, workers, cost)
        error = f"{model / result['wall_s'] - 1:+.0%}"
        rows.append([workers, f"{result['wall_s']:.0f}", f"{model:.0f}", error, f"{result['load']:.1f}"])
        result["model_s"] = model
    fits = sum(sum(run.folds_s) for run in runs)
    text = markdown_table(["workers", "measured wall s", "modelled wall s", "model error", "load at end"], rows)
    text += f"\n\n{len(runs)} runs, {sum(len(r.folds_s) for r in runs)} fold tasks, {fits:.0f} s of fold fits, "
    text += f"{sum(r.setup_s for r in runs):.0f} s of setups, {cost:.3f} s per task; predictions bit-identical"
    result = {"measured": measured, "runs": [run.__dict__ for run in runs], "per_task_s": cost}
    return publish(out, "scaleout", f"measure:{args.scale}", result, text)


# ----------------------------------------------------------------------------- modelled at full size


def model(args: argparse.Namespace) -> int:
    out = args.out.resolve()
    runs = run_costs(out / f"oof_e2e_{args.scale}")
    saved = load_result(out, "end_to_end", args.scale)
    if saved is None:
        raise SystemExit(f"no section {args.scale!r} in {out / 'end_to_end.json'}: run bench/end_to_end.py first")
    stages = {name: stage_totals(stage) for name, stage in saved["stages"].items()}  # every attempt counted
    one_machine = sum(stages[name]["wall_s"] for name in ONE_MACHINE_STAGES if name in stages)
    measured_level1 = sum(stage["wall_s"] for name, stage in stages.items() if name.startswith("level1_"))
    cost = per_task_cost(out)
    rows, table = [], {}
    for workers in WORKERS:
        level1 = level1_wall(runs, workers, cost)
        total = level1 + one_machine
        table[workers] = {"level1_s": level1, "one_machine_s": one_machine, "total_s": total}
        cells = [f"{level1 / 3600:.2f}", f"{one_machine / 3600:.2f}", f"{total / 3600:.2f}", f"{level1 / total:.0%}"]
        rows.append([workers, *cells])
    headers = ["workers", "level-1 h (model)", "prepare, features, level-2, submit h", "total h", "level-1 share"]
    longest = max(fold for run in runs for fold in run.folds_s)
    text = markdown_table(headers, rows)
    text += f"\n\nlevel-1 measured on this machine (ten local runs, every attempt): {measured_level1 / 3600:.2f} h; "
    text += f"longest fold {longest:.0f} s (no number of workers goes below it); {cost:.3f} s per task"
    result = {"table": table, "runs": [run.__dict__ for run in runs], "measured_level1_s": measured_level1}
    return publish(out, "scaleout", f"model:{args.scale}", result, text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--measure", action="store_true", help="measure 1 and 2 workers on --scale (default small)")
    mode.add_argument("--model", action="store_true", help="model 1-16 workers on the end-to-end run of --scale")
    parser.add_argument("--scale", help="small for --measure, full for --model unless given")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.scale = args.scale or ("small" if args.measure else "full")
    return measure(args) if args.measure else model(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
