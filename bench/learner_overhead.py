"""Wrapper overhead (issue 3, section 8): each learner through mmscel against the library
called directly on the same arrays, in the same run, alternating to share machine noise.

Usage: python bench/learner_overhead.py [--rows 5000] [--repeats 3] [--only ridge mlp] [--threads 2]
Writes bench/out/learner_overhead.json (with --only: learner_overhead_<names>.json, so a
partial run never replaces the full table) and prints a markdown table (ratio = mmscel /
direct, of the medians; ratio_min is the ratio of the fastest runs).

Timing protocol: each side is called once untimed first (imports and lazy set-up would
otherwise land on whichever side runs first), then the two sides alternate in ABBA order
so neither always runs right after the other. Both sides do the same work: fit on X, Y
and predict X, with the same parameters and thread count. The direct baselines are what a
user would write by hand for the same model: ridge standardises features by their std
like the wrapper; the MLP standardises inputs once and trains the same network. The
fast learners (ridge: a few ms of BLAS) are dominated by scheduling noise on a shared
2-core machine, so ratio_min (noise only adds time) is the steadier figure for them.
``--threads`` sets the thread count of both sides (learner n_jobs, library threads, and
a BLAS/OpenMP cap over the whole run); ``--threads 1`` takes thread scheduling out of
the comparison when the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from threadpoolctl import threadpool_limits

from mmscel.learners import FitData, learner_class

THREADS = 2  # both sides use this many threads (set by --threads)

PARAMS = {
    "ridge": {"alpha": 10.0},
    "lgbm": {"n_estimators": 100, "early_stopping_rounds": 0},
    "xgb": {"n_estimators": 100, "early_stopping_rounds": 0},
    "catboost": {"iterations": 100, "early_stopping_rounds": 0},
    "mlp": {"hidden": [128], "epochs": 5, "patience": 100, "loss": "mse"},
}


def data(rows: int, features: int = 150, outputs: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    W = rng.normal(size=(features, outputs)).astype(np.float32) / np.sqrt(features)
    Y = (np.tanh(X @ W) + 0.1 * rng.normal(size=(rows, outputs))).astype(np.float32)
    return X, Y


def via_mmscel(name, X, Y):
    learner = learner_class(name)(PARAMS[name], seed=0, n_jobs=THREADS)
    learner.fit(FitData(X, Y))
    return learner.predict(X)


def direct(name, X, Y):
    """The same model with the library alone (same parameters as the wrapper's defaults)."""
    if name == "ridge":
        from sklearn.linear_model import Ridge

        scale = X.std(axis=0)
        return Ridge(alpha=10.0).fit(X / scale, Y).predict(X / scale)
    if name == "lgbm":
        import lightgbm as lgb

        learner = learner_class("lgbm")(PARAMS["lgbm"], seed=0, n_jobs=THREADS)
        params = learner.booster_params()
        out = []
        for j in range(Y.shape[1]):  # the plain way: a fresh Dataset per target
            booster = lgb.train(params, lgb.Dataset(X, Y[:, j], params=params), num_boost_round=100)
            out.append(booster.predict(X))
        return np.column_stack(out)
    if name == "xgb":
        import xgboost as xgb

        learner = learner_class("xgb")(PARAMS["xgb"], seed=0, n_jobs=THREADS)
        booster = xgb.train(learner.booster_params(), xgb.QuantileDMatrix(X, Y), num_boost_round=100)
        return booster.predict(xgb.DMatrix(X))
    if name == "catboost":
        import catboost as cb

        model = cb.CatBoostRegressor(
            iterations=100,
            learning_rate=0.08,
            depth=6,
            l2_leaf_reg=3,
            border_count=128,
            loss_function="MultiRMSE",
            thread_count=THREADS,
            random_seed=0,
            verbose=False,
            allow_writing_files=False,
        )
        return model.fit(X, Y).predict(X)
    if name == "mlp":
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(THREADS)
        mean, std = X.mean(0), X.std(0) + 1e-6
        net = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], 128),
            torch.nn.LayerNorm(128),
            torch.nn.SiLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(128, Y.shape[1]),
        )
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
        xt, yt = torch.from_numpy((X - mean) / std), torch.from_numpy(Y)
        gen = torch.Generator().manual_seed(0)
        for _ in range(5):
            for idx in torch.randperm(len(xt), generator=gen).split(256):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            return net(xt).numpy()
    raise KeyError(name)


def timed(fn, *args):
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def compare(name: str, X, Y, repeats: int) -> dict:
    """Median and fastest times of the wrapper and the library, warmed up and in ABBA order."""
    sides = {"mmscel": via_mmscel, "direct": direct}
    for fn in sides.values():
        fn(name, X, Y)  # warm-up, untimed
    times = {side: [] for side in sides}
    for i in range(repeats):
        for side in sides if i % 2 == 0 else reversed(sides):
            times[side].append(timed(sides[side], name, X, Y))
    row = {"learner": name}
    for side, values in times.items():
        row[f"{side}_s"] = float(np.median(values))
        row[f"{side}_min_s"] = float(min(values))
    row["ratio"] = row["mmscel_s"] / row["direct_s"]
    row["ratio_min"] = row["mmscel_min_s"] / row["direct_min_s"]
    return row


def set_threads(n: int) -> None:
    """Use ``n`` threads on both sides."""
    global THREADS
    THREADS = n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(PARAMS), default=list(PARAMS))
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    set_threads(args.threads)
    X, Y = data(args.rows)
    results = []
    with threadpool_limits(args.threads):
        for name in args.only:
            row = compare(name, X, Y, args.repeats)
            results.append(row)
            print(row, flush=True)
    suffix = "" if args.only == list(PARAMS) else "_" + "_".join(args.only)
    out = ROOT / "bench" / "out" / f"learner_overhead{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "features": 150,
                "outputs": 16,
                "repeats": args.repeats,
                "threads": args.threads,
                "results": results,
            },
            indent=2,
        )
    )
    print("| learner | mmscel (s) | library directly (s) | ratio | ratio of fastest runs |\n|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['learner']} | {r['mmscel_s']:.3f} | {r['direct_s']:.3f} | {r['ratio']:.2f} | {r['ratio_min']:.2f} |"
        )


if __name__ == "__main__":
    main()
