"""Wrapper overhead of the level-1 learners: each through mmscel against its library called directly.

    python bench/learner_overhead.py [--rows 5000] [--repeats 3] [--only ridge mlp] [--threads 2] [--out bench/out]

Both sides fit and predict the same arrays (``--rows`` x 150 features x 16 outputs) with the same
parameters and thread count. The direct baselines are what a user would write by hand for the same
model: Ridge on features scaled by their standard deviation, a LightGBM booster per target on a fresh
Dataset each, one XGBoost and one CatBoost MultiRMSE model, the same torch network trained on inputs
standardised once. Each side runs once untimed first (imports and lazy set-up would otherwise land on
whichever side runs first), then the two alternate in ABBA order. Reported: the medians and their
ratio (mmscel / direct), and the ratio of the fastest runs, the steadier figure for learners that take
a few milliseconds (noise only adds time). ``--threads`` sets both sides' threads and caps BLAS and
OpenMP over the whole run (``--threads 1`` takes thread scheduling out of the comparison on a shared
machine). Writes ``OUT/learner_overhead.json`` (section = rows, threads and learners).

    python bench/learner_overhead.py --threads-by-rows 250 1000 2000 4000 [--repeats 3] [--only lgbm xgb]

measures instead what sets each learner's ``rows_per_thread``: each learner through mmscel on
one thread and on two (forced, whatever the rows), at each row count, in ABBA order; section
``threads_by_rows``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The learners run in this process: OpenMP threads must wait passively, as under the command line,
# or they spin and starve each other on an oversubscribed machine. Set before any OpenMP library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mmscel
from common import add_out_argument, markdown_table, save_result
from mmscel.learners import FitData

FEATURES, OUTPUTS = 150, 16
PARAMS = {
    "ridge": {"alpha": 10.0},
    "lgbm": {"n_estimators": 100, "early_stopping_rounds": 0},
    "xgb": {"n_estimators": 100, "early_stopping_rounds": 0},
    "catboost": {"iterations": 100, "early_stopping_rounds": 0},
    "mlp": {"hidden": [128], "epochs": 5, "patience": 100, "loss": "mse"},
}


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and a smooth nonlinear function of them plus noise, float32."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    W = rng.normal(size=(FEATURES, OUTPUTS)).astype(np.float32) / np.sqrt(FEATURES)
    Y = (np.tanh(X @ W) + 0.1 * rng.normal(size=(rows, OUTPUTS))).astype(np.float32)
    return X, Y


def learner(name: str, threads: int):
    return mmscel.make_learner(name, PARAMS[name], seed=0, n_jobs=threads)


def via_mmscel(name: str, X, Y, threads: int) -> np.ndarray:
    fitted = learner(name, threads)
    fitted.fit(FitData(X, Y))
    return fitted.predict(X)


def direct_ridge(X, Y, threads: int) -> np.ndarray:
    from sklearn.linear_model import Ridge

    scale = X.std(axis=0)
    return Ridge(alpha=PARAMS["ridge"]["alpha"]).fit(X / scale, Y).predict(X / scale)


def direct_lgbm(X, Y, threads: int) -> np.ndarray:
    import lightgbm as lgb

    params = learner("lgbm", threads).booster_params()
    rounds = PARAMS["lgbm"]["n_estimators"]
    boosters = [lgb.train(params, lgb.Dataset(X, Y[:, j], params=params), rounds) for j in range(Y.shape[1])]
    return np.column_stack([booster.predict(X) for booster in boosters])


def direct_xgb(X, Y, threads: int) -> np.ndarray:
    import xgboost as xgb

    params = learner("xgb", threads).booster_params()
    booster = xgb.train(params, xgb.QuantileDMatrix(X, Y), num_boost_round=PARAMS["xgb"]["n_estimators"])
    return booster.predict(xgb.DMatrix(X))


def direct_catboost(X, Y, threads: int) -> np.ndarray:
    import catboost as cb

    model = cb.CatBoostRegressor(
        iterations=PARAMS["catboost"]["iterations"],
        learning_rate=0.08,
        depth=6,
        l2_leaf_reg=3,
        border_count=128,
        loss_function="MultiRMSE",
        thread_count=threads,
        random_seed=0,
        verbose=False,
        allow_writing_files=False,
    )
    return model.fit(X, Y).predict(X)


def direct_mlp(X, Y, threads: int) -> np.ndarray:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    mean, std = X.mean(0), X.std(0) + 1e-6
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 128),
        torch.nn.LayerNorm(128),
        torch.nn.SiLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(128, Y.shape[1]),
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    xt, yt = torch.from_numpy((X - mean) / std), torch.from_numpy(Y)
    generator = torch.Generator().manual_seed(0)
    for _ in range(PARAMS["mlp"]["epochs"]):
        for batch in torch.randperm(len(xt), generator=generator).split(256):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(xt[batch]), yt[batch]).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        return net(xt).numpy()


DIRECT = {
    "ridge": direct_ridge,
    "lgbm": direct_lgbm,
    "xgb": direct_xgb,
    "catboost": direct_catboost,
    "mlp": direct_mlp,
}


def seconds(func, *args) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def abba_times(sides: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each of two sides per repeat, after one untimed run of each, in ABBA order."""
    for run in sides.values():
        run()
    times = {side: [] for side in sides}
    for i in range(repeats):
        for side in sides if i % 2 == 0 else reversed(sides):
            times[side].append(seconds(sides[side]))
    return times


def compare(name: str, X, Y, repeats: int, threads: int) -> dict:
    """Median and fastest times of the wrapper and the library, after a warm-up, in ABBA order."""
    sides = {"mmscel": lambda: via_mmscel(name, X, Y, threads), "direct": lambda: DIRECT[name](X, Y, threads)}
    times = abba_times(sides, repeats)
    row = {"learner": name}
    for side, values in times.items():
        row[f"{side}_s"], row[f"{side}_min_s"] = float(np.median(values)), float(min(values))
    row["ratio"] = row["mmscel_s"] / row["direct_s"]
    row["ratio_min"] = row["mmscel_min_s"] / row["direct_min_s"]
    return row


def thread_scaling(name: str, rows: int, repeats: int) -> dict:
    """Median fit + predict seconds of ``name`` on ``rows`` rows with one thread and with two."""
    from mmscel.learners import learner_class

    X, Y = make_data(rows)
    cls = learner_class(name)
    keep, cls.rows_per_thread = cls.rows_per_thread, 0  # n_jobs threads at any size
    try:
        times = abba_times({1: lambda: via_mmscel(name, X, Y, 1), 2: lambda: via_mmscel(name, X, Y, 2)}, repeats)
    finally:
        cls.rows_per_thread = keep
    one, two = float(np.median(times[1])), float(np.median(times[2]))
    return {"learner": name, "rows": rows, "one_thread_s": one, "two_threads_s": two, "speedup": one / two}


def report(rows: list[dict]) -> str:
    headers = ["learner", "mmscel (s)", "library directly (s)", "ratio (median)", "ratio (fastest runs)"]
    table = [
        [r["learner"], f"{r['mmscel_s']:.3f}", f"{r['direct_s']:.3f}", f"{r['ratio']:.2f}", f"{r['ratio_min']:.2f}"]
        for r in rows
    ]
    return markdown_table(headers, table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(PARAMS), default=list(PARAMS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threads-by-rows", type=int, nargs="+", metavar="ROWS")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.threads_by_rows:
        return threads_by_rows(args)
    X, Y = make_data(args.rows)
    rows = []
    with threadpool_limits(args.threads):
        for name in args.only:
            rows.append(compare(name, X, Y, args.repeats, args.threads))
            print(rows[-1], flush=True)
    section = f"{args.rows}_rows_{args.threads}_threads_{'_'.join(args.only)}"
    settings = {"rows": args.rows, "features": FEATURES, "outputs": OUTPUTS, "repeats": args.repeats}
    save_result(args.out, "learner_overhead", section, {**settings, "threads": args.threads, "results": rows})
    print(report(rows))
    return 0


def threads_by_rows(args: argparse.Namespace) -> int:
    """The one-against-two-threads table over row counts, saved as section ``threads_by_rows``."""
    rows = []
    for count in args.threads_by_rows:
        for name in args.only:
            rows.append(thread_scaling(name, count, args.repeats))
            print(rows[-1], flush=True)
    save_result(args.out, "learner_overhead", "threads_by_rows", {"repeats": args.repeats, "results": rows})
    headers = ["learner", "rows", "1 thread (s)", "2 threads (s)", "speed-up of 2 threads"]
    table = [
        [r["learner"], r["rows"], f"{r['one_thread_s']:.3f}", f"{r['two_threads_s']:.3f}", f"{r['speedup']:.2f}"]
        for r in rows
    ]
    print(markdown_table(headers, table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
