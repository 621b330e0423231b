"""Full-scale benchmarks of issue 3, section 8 (and prepare at full scale).

    python bench/fullscale.py [--data bench/out/full] [--steps prepare,svd,fold] [--learners ridge,lgbm,...]

Every step runs in its own subprocess (``bench/measure.py``), so each wall
time and peak RSS belongs to that step alone; the results are appended to
``bench/out/fullscale.json`` as each step ends, so a long session keeps what
finished. Baselines measured in the same run:

``prepare``  ``mmscel prepare`` of the whole folder, against the PyTables raw
             read of the same files (``bench/floor.py tables``).
``svd``      randomized TruncatedSVD (``mmscel.features.truncated_svd``, 128
             components) of the CITEseq inputs (train + test), the Multiome
             inputs (train + test) and the Multiome targets (train), each
             against loading that matrix from the cache (``mmscel.data.load``),
             the floor every SVD pays first.
``fold``     one fold of each learner per task: ``mmscel level1`` with the
             shipped config and ``folds: {scheme: last_day}`` (train on the
             earlier days, validate on the last training day: one fit), its
             features taken from the cache the first run builds; against
             Ridge's fold on the same features.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PY = sys.executable
MMSCEL = Path(PY).parent / "mmscel"
sys.path.insert(0, str(HERE))

from measure import run_measured  # noqa: E402

RESULTS = OUT / "fullscale.json"  # --results moves it
SVD_MATRICES = {
    "cite_inputs": ("cite", "inputs", True),
    "multi_inputs": ("multi", "inputs", True),
    "multi_targets": ("multi", "targets", False),
}


def record(key: str, value) -> None:
    """Append one step's result to the JSON file (written whole each time)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = value
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"{key}: {json.dumps(value)[:300]}", flush=True)


def measured(cmd: list[str], name: str) -> dict:
    """Wall time and peak RSS of one subprocess, logged to ``bench/out/logs/fullscale_<name>.log``."""
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    return run_measured([str(c) for c in cmd], log=OUT / "logs" / f"fullscale_{name}.log")


def step_prepare(data: Path) -> None:
    floors = {}
    for h5 in sorted(data.glob("*.h5")):
        floors[h5.name] = measured([PY, HERE / "floor.py", "tables", h5], f"floor_{h5.stem}")["wall_s"]
    run = measured([MMSCEL, "prepare", "--data", data], "prepare")
    floor = sum(floors.values())
    record(
        "prepare",
        {
            "wall_s": run["wall_s"],
            "peak_rss_mib": run["peak_rss_mib"],
            "floor_read_s": floor,
            "floors_s": floors,
            "throughput_ratio": floor / run["wall_s"],
        },
    )


_SVD_SCRIPT = """
import sys, time
from mmscel.data.load import load, stacked_inputs
from mmscel.features import truncated_svd
task, part, with_test, mode = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
started = time.perf_counter()
if with_test:
    matrix = stacked_inputs(task, sys.argv[5])
else:
    matrix = getattr(load(task, "train", sys.argv[5], inputs=part == "inputs", targets=part == "targets"), part)
loaded = time.perf_counter() - started
if mode == "svd":
    truncated_svd(matrix, 128, 0)
print({"load_s": loaded, "total_s": time.perf_counter() - started, "shape": matrix.shape, "nnz": matrix.nnz})
"""


def step_svd(data: Path, matrices: list[str]) -> None:
    """Load every matrix (``load_<name>``); fit the SVD of those in ``matrices`` (``svd_<name>``)."""
    for name, (task, part, with_test) in SVD_MATRICES.items():
        args = [task, part, "1" if with_test else "0"]
        load_only = measured([PY, "-c", _SVD_SCRIPT, *args, "load", data], f"load_{name}")
        record(f"load_{name}", {"wall_s": load_only["wall_s"], "peak_rss_mib": load_only["peak_rss_mib"]})
        if name not in matrices:
            continue
        svd = measured([PY, "-c", _SVD_SCRIPT, *args, "svd", data], f"svd_{name}")
        record(
            f"svd_{name}",
            {
                "svd_wall_s": svd["wall_s"],
                "svd_peak_rss_mib": svd["peak_rss_mib"],
                "load_wall_s": load_only["wall_s"],
                "load_peak_rss_mib": load_only["peak_rss_mib"],
                "svd_over_load": svd["wall_s"] / load_only["wall_s"],
            },
        )


_FEATURES_SCRIPT = """
import sys
from mmscel.config import load_run_config
from mmscel.features import build_features
config = load_run_config(sys.argv[1])
build_features(config.task, config.feature_config(), sys.argv[2], oof_root=sys.argv[3], seed=config.seed)
"""


def step_fold(data: Path, learners: list[str], tasks: list[str], oof: Path) -> None:
    """Per task: build the features once (``features_<task>``), then one last-day fit per learner."""
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            features = measured(
                [PY, "-c", _FEATURES_SCRIPT, ROOT / "configs" / task / f"{learners[0]}.yaml", data, oof],
                f"features_{task}",
            )
            record(f"features_{task}", {"wall_s": features["wall_s"], "peak_rss_mib": features["peak_rss_mib"]})
            for learner in learners:
                config = yaml.safe_load((ROOT / "configs" / task / f"{learner}.yaml").read_text())
                config.update(name=f"full_{learner}", folds={"scheme": "last_day"})
                path = Path(tmp) / f"{task}_{learner}.yaml"
                path.write_text(yaml.safe_dump(config))
                run = measured(
                    [MMSCEL, "level1", path, "--data", data, "--oof", oof, "--overwrite"], f"fold_{task}_{learner}"
                )
                manifest = json.loads((oof / task / f"full_{learner}" / "manifest.json").read_text())
                record(
                    f"fold_{task}_{learner}",
                    {
                        "wall_s": run["wall_s"],
                        "peak_rss_mib": run["peak_rss_mib"],
                        "last_day": manifest.get("last_day"),
                        "run_wall_s": manifest.get("wall_seconds"),
                    },
                )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=OUT / "full")
    parser.add_argument("--steps", default="prepare,svd,fold")
    parser.add_argument(
        "--svd-matrices", default=",".join(SVD_MATRICES), help="which matrices the svd step fits (all are loaded)"
    )
    parser.add_argument("--learners", default="ridge,lgbm,xgb,catboost,mlp")
    parser.add_argument("--tasks", default="cite,multi")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--oof", type=Path, default=OUT / "oof_full")
    args = parser.parse_args(argv)
    globals()["RESULTS"] = args.results
    steps = args.steps.split(",")
    if "prepare" in steps:
        step_prepare(args.data)
    if "svd" in steps:
        step_svd(args.data, args.svd_matrices.split(","))
    if "fold" in steps:
        step_fold(args.data, args.learners.split(","), args.tasks.split(","), args.oof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
