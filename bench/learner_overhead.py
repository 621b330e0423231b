"""Wrapper overhead (issue 3, section 8): each learner through mmscel against the library
called directly on the same arrays, in the same run, alternating to share machine noise.

Usage: python bench/learner_overhead.py [--rows 5000] [--repeats 3]
Writes bench/out/learner_overhead.json and prints a markdown table (ratio = mmscel / direct).
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

from mmscel.learners import FitData, learner_class

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
    learner = learner_class(name)(PARAMS[name], seed=0, n_jobs=2)
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

        learner = learner_class("lgbm")(PARAMS["lgbm"], seed=0, n_jobs=2)
        params = learner.booster_params()
        out = []
        for j in range(Y.shape[1]):  # the plain way: a fresh Dataset per target
            booster = lgb.train(
                params, lgb.Dataset(X, Y[:, j], params=params), num_boost_round=100
            )
            out.append(booster.predict(X))
        return np.column_stack(out)
    if name == "xgb":
        import xgboost as xgb

        learner = learner_class("xgb")(PARAMS["xgb"], seed=0, n_jobs=2)
        booster = xgb.train(
            learner.booster_params(), xgb.QuantileDMatrix(X, Y), num_boost_round=100
        )
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
            thread_count=2,
            random_seed=0,
            verbose=False,
            allow_writing_files=False,
        )
        return model.fit(X, Y).predict(X)
    if name == "mlp":
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(2)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, Y = data(args.rows)
    results = []
    for name in PARAMS:
        wrapped, plain = [], []
        for _ in range(args.repeats):  # alternate, so both see the same machine state
            wrapped.append(timed(via_mmscel, name, X, Y))
            plain.append(timed(direct, name, X, Y))
        row = {
            "learner": name,
            "mmscel_s": float(np.median(wrapped)),
            "direct_s": float(np.median(plain)),
        }
        row["ratio"] = row["mmscel_s"] / row["direct_s"]
        results.append(row)
        print(row, flush=True)
    out = ROOT / "bench" / "out" / "learner_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "features": 150,
                "outputs": 16,
                "repeats": args.repeats,
                "results": results,
            },
            indent=2,
        )
    )
    print("| learner | mmscel (s) | library directly (s) | ratio |\n|---|---|---|---|")
    for r in results:
        print(
            f"| {r['learner']} | {r['mmscel_s']:.2f} | {r['direct_s']:.2f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
