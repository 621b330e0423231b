"""A small store on the tiny competition for the report and notebook tests: two ridge runs per task, a blend,
a tuning study; built once per test session and shared read-only."""

from __future__ import annotations

import fcntl
from pathlib import Path

import yaml

from mmscel.blend.run import run_level2
from mmscel.level1 import run_level1
from mmscel.tune.session import tune

FEATURES = {"cite": {"svd_components": 16}, "multi": {"svd_components": 16, "target_svd_components": 8}}
RUNS = {"ridge": {"alpha": 10.0}, "ridge_strong": {"alpha": 3000.0}}
TUNE = {"params.alpha": {"type": "float", "low": 0.1, "high": 1e5, "log": True}}


def build_store(folder: Path, data: Path) -> Path:
    """The store under ``folder/oof`` (built on first call; later calls of the session find it done)."""
    folder.mkdir(parents=True, exist_ok=True)
    oof, done = folder / "oof", folder / "done"
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(folder, oof, data)
            done.touch()
    return oof


def _build(folder: Path, oof: Path, data: Path) -> None:
    for task in ("cite", "multi"):
        for name, params in RUNS.items():
            config = {"name": f"{task}_{name}", "task": task, "learner": "ridge", "params": params}
            config.update(features=FEATURES[task], n_jobs=1)
            run_level1(config, data, oof_root=oof)
    run_level2({"name": "blend", "method": "greedy", "nested_trials": 5}, data, oof_root=oof)
    config = folder / "cite_ridge.yaml"
    spec = {"task": "cite", "learner": "ridge", "params": RUNS["ridge"], "features": FEATURES["cite"], "n_jobs": 1}
    config.write_text(yaml.safe_dump({**spec, "tune": TUNE}))
    tune(config, data, oof_root=oof, trials=5, study="report_ridge", plots=False, pruner="none")
