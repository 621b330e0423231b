"""The features and one level-1 fold per learner on the full-size synthetic competition.

    python bench/fullscale.py [--data bench/out/full] [--steps svd,features,fold] [--svd-matrices ...]
                              [--learners ridge,lgbm,xgb,catboost,mlp] [--tasks cite,multi] [--out bench/out]

DATA must hold the full synthetic competition (``python bench/synth.py --scale full`` or ``mmscel synth
--scale full``); it is prepared first unless its cache is current.
Every step runs in its own process (``bench/fullscale_step.py`` or the ``mmscel`` CLI), so each wall
time and peak RSS belongs to that step alone, and each result is saved as soon as its step ends:

svd       per matrix (CITEseq inputs train + test, Multiome inputs train + test, Multiome targets):
          loading it from the cache, then, for those in ``--svd-matrices``, the randomized
          TruncatedSVD (128 components) the features fit, against the load it starts with;
features  the whole feature build of each task with its shipped configs (``configs/<task>/``);
fold      ``mmscel level1`` of each shipped config with ``folds: {scheme: last_day}`` (train on the
          earlier days, validate on the last training day: one fit), on the cached features;
          against Ridge's fold on the same features.

Writes ``OUT/fullscale.json`` (one section per step and matrix, task or learner).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    add_out_argument,
    bench_script,
    markdown_table,
    measured_step,
    mmscel_command,
    prepared,
    run_measured,
    save_result,
)

SVD_MATRICES = {
    "cite_inputs": ("cite", "inputs"),
    "multi_inputs": ("multi", "inputs"),
    "multi_targets": ("multi", "targets"),
}


class Steps:
    """Where the steps read and write, and how each is recorded."""

    def __init__(self, data: Path, out: Path, oof: Path):
        self.data, self.out, self.oof = data, out, oof
        self.done: dict[str, dict] = {}

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"fullscale_{name}.log"

    def record(self, name: str, result: dict) -> None:
        save_result(self.out, "fullscale", name, result)
        self.done[name] = result
        print(f"{name}: {result['wall_s']:,.1f} s, peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)

    def table(self) -> str:
        rows = [
            [name, r["wall_s"], round(r["peak_rss_mib"]), four_decimals(r.get("last_day")), r.get("svd_over_load")]
            for name, r in self.done.items()
        ]
        return markdown_table(["step", "wall s", "peak RSS MiB", "last-day score", "SVD / load"], rows)


def four_decimals(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def step_svd(steps: Steps, fitted: list[str]) -> None:
    """Load every matrix; fit the SVD of those in ``fitted``."""
    for name, (task, part) in SVD_MATRICES.items():
        command = bench_script("fullscale_step.py") + ["load", task, part, steps.data]
        load = measured_step(command, steps.log(f"load_{name}"))
        steps.record(f"load_{name}", load)
        if name in fitted:
            command = bench_script("fullscale_step.py") + ["svd", task, part, steps.data]
            svd = measured_step(command, steps.log(f"svd_{name}"))
            steps.record(f"svd_{name}", {**svd, "svd_over_load": svd["wall_s"] / load["wall_s"]})


def step_features(steps: Steps, tasks: list[str]) -> None:
    """The feature set of each task (all its shipped configs share one)."""
    for task in tasks:
        config = ROOT / "configs" / task / "ridge.yaml"
        command = bench_script("fullscale_step.py") + ["features", config, steps.data, steps.oof]
        steps.record(f"features_{task}", measured_step(command, steps.log(f"features_{task}")))


def step_fold(steps: Steps, tasks: list[str], learners: list[str]) -> None:
    """One last-day fit of each shipped config."""
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            for learner in learners:
                config = last_day_config(task, learner, Path(tmp))
                command = mmscel_command() + ["level1", config, "--data", steps.data, "--oof", steps.oof, "--overwrite"]
                run = run_measured(command, log=steps.log(f"fold_{task}_{learner}"))
                manifest = json.loads((steps.oof / task / f"full_{learner}" / "manifest.json").read_text())
                scores = {key: manifest.get(key) for key in ("last_day", "last_day_mean_profile", "wall_seconds")}
                steps.record(f"fold_{task}_{learner}", {**run, **scores})


def last_day_config(task: str, learner: str, folder: Path) -> Path:
    """The shipped config of ``learner`` renamed ``full_<learner>``, with the last-day fold only."""
    config = yaml.safe_load((ROOT / "configs" / task / f"{learner}.yaml").read_text())
    config.update(name=f"full_{learner}", folds={"scheme": "last_day"})
    path = folder / f"{task}_{learner}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="prepared full-size competition (default OUT/full)")
    parser.add_argument("--steps", default="svd,features,fold")
    parser.add_argument("--svd-matrices", default=",".join(SVD_MATRICES), help="matrices the svd step fits")
    parser.add_argument("--learners", default="ridge,lgbm,xgb,catboost,mlp")
    parser.add_argument("--tasks", default="cite,multi")
    parser.add_argument("--oof", type=Path, default=None, help="store of features and runs (default OUT/oof_full)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    data = prepared(args.data or args.out / "full", args.out)
    steps = Steps(data, args.out, args.oof or args.out / "oof_full")
    chosen, tasks = args.steps.split(","), args.tasks.split(",")
    if "svd" in chosen:
        step_svd(steps, args.svd_matrices.split(","))
    if "features" in chosen:
        step_features(steps, tasks)
    if "fold" in chosen:
        step_fold(steps, tasks, args.learners.split(","))
    print(steps.table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
