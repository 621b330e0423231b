"""One fit of a run config on every training cell, its test predictions scored on the local leaderboard.

    python bench/refit_probe.py configs/multi/mlp.yaml --set params.standardize_inputs=false [--data DIR]

A quick probe of a setting before it earns a row of the options ablation (bench/option_ablation.py): no
folds, no blend, one fit of the run's learner on all training cells (the run's ``refit`` split), the test
cells scored per cell on their evaluation rows by the local leaderboard's scorer, public and private as
the synthetic truth splits them. Its scores equal those of the same config with ``test_predictions: refit`` on
the leaderboard. The feature cache goes to ``--store`` (default ``OUT/probe_store``); each result is
printed and appended to ``OUT/refit_probe.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_out_argument
from mmscel.api import as_store
from mmscel.config import load_run_config
from mmscel.cv import Split, fit_split
from mmscel.learners import make_learner
from mmscel.level1_inputs import REFIT, SEED_OFFSETS, load_inputs
from mmscel.scoring import TaskScorer


def refit_predictions(config, data: Path, store: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The config's learner fitted on every training cell: its test predictions, their components, its cost.

    The predictions hold one row per test cell in test-input order; for a run fitted in a gene-SVD space they
    are its coefficients and the components map them onto genes (else the components are None).
    """
    inputs = load_inputs(config, data, None, as_store(store))
    space = inputs.target_space(config)
    if not space.per_fold and not space.fitted:
        space.fit(inputs.Y)
    learner = make_learner(config.learner, config.learner_params(), config.seed, config.n_jobs, config.seeds)
    every = np.arange(inputs.features.train.shape[0])
    split = Split(REFIT, every, np.zeros(0, dtype=np.int64), role="refit", seed_offset=SEED_OFFSETS[REFIT])
    wall, cpu = time.perf_counter(), time.process_time()
    targets = None if space.per_fold else space.transform(inputs.Y)
    X, X_test = inputs.features.train, inputs.features.test
    result, _, _ = fit_split(learner, X, inputs.Y, split, X_test, space, targets, config.validation_fraction)
    cost = {"wall_s": round(time.perf_counter() - wall), "cpu_s": round(time.process_time() - cpu)}
    return np.asarray(result.test), None if space.basis is None else space.basis.components, cost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE over the config (repeatable)")
    parser.add_argument("--data", type=Path, help="a synthetic competition (default OUT/small)")
    parser.add_argument("--store", type=Path, help="the feature cache (default OUT/probe_store)")
    add_out_argument(parser)
    args = parser.parse_args()
    config = load_run_config(args.config, args.set)
    data = args.data or args.out / "small"
    test, components, cost = refit_predictions(config, data, args.store or args.out / "probe_store")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    scores = TaskScorer(data).scores(config.task, test, components)
    result = {"config": str(args.config), "set": args.set, **{k: round(v, 4) for k, v in scores.items()}}
    result.update(cost, peak_rss_mib=peak)
    print(json.dumps(result), flush=True)
    with (args.out / "refit_probe.jsonl").open("a") as log:
        log.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
