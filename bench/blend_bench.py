"""Level-2 blending: the methods on the level-1 OOF stores, and the exact objective's cost at full size.

    python bench/blend_bench.py --section methods [--scale small] [--cases LABEL ...] [--trials 300] [--out bench/out]
    python bench/blend_bench.py --section component --cells 105942 --genes 23418 --components 128 \\
        --runs 5 --trials 1000 --density 0.32 --basis random

methods    ``mmscel level2`` with each method (equal, greedy, SLSQP, stack, Optuna) on the stores
           bench/level1_quality.py writes: the synthetic runs of each task (``OUT/oof_<scale>``), the five
           single BMMC runs and the muon runs (``OUT/real/oof``). Seed, greedy steps and nested trials come
           from configs/blend.yaml; every study starts afresh. Reported from the blend manifests: each
           method's in-sample score beside the best single run, the weights, the command's seconds, and
           whether Optuna reaches the best of greedy and SLSQP (within 1e-4).
component  A Multiome-like truth (cells x genes, CSR float32): log1p(Poisson) counts of a rank-k log-rate
           with about ``--density`` non-zeros, built in row chunks. The target basis is a randomized
           TruncatedSVD of it (``--basis svd``) or a random orthonormal one (``--basis random``: the scoring
           cost is the same for any orthonormal basis, and it saves the SVD's tens of minutes at full
           size). ``--runs`` runs of coefficients = the truth's projection + noise shared by all runs +
           each run's own noise. Measured: the precompute (``component_statistics``: seconds, peak traced
           memory), the per-trial cost of the component-space score, the per-trial cost of the naive way
           (blend the coefficients, reconstruct the genes ``Z V`` in float32 row chunks, per-cell Pearson;
           on a row subset scaled to all cells when cells x genes is large), Optuna studies of ``--trials``
           trials (greedy and SLSQP starts included) in memory and with a journal file, and exactness: the
           component score against the definition (every run's genes in float64, z-scored per cell,
           blended, correlated) on ``--check-rows`` cells, within 1e-6.

Writes ``OUT/blend_bench.json`` (one section each) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, add_out_argument, markdown_table, mmscel_command, run_command, save_result
from mmscel.blend.methods import greedy_weights, optuna_weights, slsqp_weights
from mmscel.blend.objective import blend_components, component_statistics
from mmscel.metrics import pearson_per_row, standardize_rows
from mmscel.targets import TargetBasis

TASKS = ("cite", "multi")
FULL_CELLS = 105_942
OPTUNA_TOLERANCE = 1e-4
EXACT_TOLERANCE = 1e-6
CHUNK_BYTES = 64 * 2**20
METHODS = ("equal", "greedy", "slsqp", "stack", "optuna")
BLEND_CONFIG = yaml.safe_load((ROOT / "configs" / "blend.yaml").read_text())  # seed, greedy steps, nested trials


def timed(func, *args, **kwargs):
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - started


def chunk_rows(n_columns: int) -> int:
    """Rows of a dense float32 chunk of at most ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // (4 * max(1, n_columns)))


# ----------------------------------------------------------------------------- methods


def cases(out: Path, scale: str) -> dict[str, tuple[Path, Path, str, list[str]]]:
    """Blend cases: label -> (OOF store, data folder, task, run patterns), as level1_quality.py writes them."""
    synthetic, real = out / f"oof_{scale}", out / "real" / "oof"
    bmmc = ["bmmc_ridge", "bmmc_lgbm", "bmmc_xgb", "bmmc_catboost", "bmmc_mlp"]
    return {
        f"{scale} synthetic / cite": (synthetic, out / scale, "cite", ["cite_*"]),
        f"{scale} synthetic / multi": (synthetic, out / scale, "multi", ["multi_*"]),
        "real BMMC CITE": (real, out / "real" / "bmmc_cite", "cite", bmmc),
        "real muon Multiome": (real, out / "real" / "muon_multi", "multi", ["muon_*"]),
    }


def blend_with(method: str, case: tuple, trials: int, logs: Path) -> dict:
    """``mmscel level2`` of one case with ``method`` (a fresh study); the task's entry of its manifest."""
    oof, data, task, patterns = case
    name = f"methods_{method}"
    shutil.rmtree(oof / "blend" / name, ignore_errors=True)
    config = {**BLEND_CONFIG, "name": name, "method": method, "n_trials": trials, "runs": {task: patterns}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        command = mmscel_command() + ["level2", path, "--data", data, "--oof", oof]
        run_command(command, log=logs / f"blend_{task}_{data.name}_{method}.log")
    manifest = json.loads((oof / "blend" / name / "manifest.json").read_text())
    return {**manifest["tasks"][task], "wall_seconds": manifest["wall_seconds"]}


def section_methods(args) -> dict:
    blends = {}
    for label, case in cases(args.out, args.scale).items():
        if args.cases and label not in args.cases or not case[0].exists():
            continue
        print(f"blending {label} ...", file=sys.stderr, flush=True)
        methods = {method: blend_with(method, case, args.trials, args.out / "logs") for method in METHODS}
        classic = max(methods["greedy"]["in_sample"], methods["slsqp"]["in_sample"])
        blends[label] = {
            "runs": methods["optuna"]["runs"],
            "n_cells": methods["optuna"]["n_cells"],
            "best_single": methods["optuna"]["best_single"],
            "methods": methods,
            "optuna_minus_classic": methods["optuna"]["in_sample"] - classic,
            "optuna_reaches_classic": bool(methods["optuna"]["in_sample"] >= classic - OPTUNA_TOLERANCE),
        }
    return {"trials": args.trials, "blends": blends}


def methods_report(result: dict) -> str:
    headers = ["OOF store / task", "runs x cells", "best single", *METHODS, "Optuna - best(greedy, SLSQP)"]
    rows = [
        [
            label,
            f"{len(b['runs'])} x {b['n_cells']:,}",
            f"{b['best_single']['score']:.4f}",
            *(f"{b['methods'][m]['in_sample']:.6f}" for m in METHODS),
            f"{b['optuna_minus_classic']:+.0e}" if b["optuna_minus_classic"] else "0",
        ]
        for label, b in result["blends"].items()
    ]
    lines = [markdown_table(headers, rows, left=2), ""]
    for label, b in result["blends"].items():
        weights = "; ".join(
            f"{m} "
            + " ".join(f"{w:.3f}" for w in b["methods"][m]["weights"])
            + f" ({b['methods'][m]['wall_seconds']:.1f} s)"
            for m in METHODS
        )
        check = "PASS" if b["optuna_reaches_classic"] else "FAIL"
        lines.append(f"- {label} ({', '.join(b['runs'])}): Optuna reaches greedy/SLSQP: {check}; weights {weights}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- component


def synthetic_truth(cells: int, genes: int, rank: int, density: float, seed: int) -> sp.csr_matrix:
    """log1p(Poisson) counts of a rank-``rank`` log-rate with about ``density`` non-zeros, CSR float32."""
    rng = np.random.default_rng(seed)
    loadings = (rng.normal(size=(rank, genes)) * 0.8 / np.sqrt(rank)).astype(np.float32)
    gene_level = rng.normal(size=genes).astype(np.float32) * 0.5
    base = -np.log1p(-min(density, 0.95))  # Poisson mean with P(count > 0) = density
    log_base = np.log(base) - 0.5 * (0.64 + 0.25 + 0.09)  # compensates the mean of the log-normal terms
    parts = []
    for start in range(0, cells, chunk_rows(genes)):
        n = min(chunk_rows(genes), cells - start)
        latent = rng.normal(size=(n, rank)).astype(np.float32)
        library = rng.normal(size=(n, 1)).astype(np.float32) * 0.3
        rate = np.exp(log_base + gene_level + library + latent @ loadings)
        parts.append(sp.csr_matrix(np.log1p(rng.poisson(rate)).astype(np.float32)))
    return sp.vstack(parts, format="csr")


def random_basis(truth: sp.csr_matrix, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random orthonormal basis (k rows) and the truth's coefficients in it, float32."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(truth.shape[1], k)))
    components = np.ascontiguousarray(q.T, dtype=np.float32)
    return np.asarray(truth @ components.T, dtype=np.float32), components


def svd_basis(truth: sp.csr_matrix, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The randomized TruncatedSVD of the truth (zero mean, like the target SVD) and its coefficients."""
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(n_components=k, algorithm="randomized", random_state=seed)
    return svd.fit_transform(truth).astype(np.float32), svd.components_.astype(np.float32)


def make_runs(projection: np.ndarray, n_runs: int, seed: int) -> list[np.ndarray]:
    """Coefficients of ``n_runs`` runs: projection + shared noise + each run's own noise (growing with the index)."""
    rng = np.random.default_rng(seed + 1)
    scale = projection.std(axis=0, keepdims=True)
    shared = rng.normal(size=projection.shape).astype(np.float32) * scale * 0.3
    own = [rng.normal(size=projection.shape).astype(np.float32) * scale * (0.4 + 0.15 * i) for i in range(n_runs)]
    return [(projection + shared + noise).astype(np.float32) for noise in own]


def naive_per_cell(coefficients, basis: TargetBasis, truth, weights, rows: np.ndarray) -> np.ndarray:
    """Per-cell Pearson the naive way: blend the coefficients, reconstruct the genes in row chunks, correlate."""
    blended = blend_components([c[rows] for c in coefficients], basis, weights)
    V = np.asarray(basis.components, dtype=np.float32)
    out = np.empty(len(rows))
    for start in range(0, len(rows), chunk_rows(V.shape[1])):
        part = slice(start, start + chunk_rows(V.shape[1]))
        out[part] = pearson_per_row(truth[rows[part]].toarray(), blended[part] @ V)
    return out


def definition_per_cell(coefficients, basis: TargetBasis, truth, weight_sets, rows: np.ndarray) -> np.ndarray:
    """Per-cell Pearson by the definition, in float64 (weight sets x cells)."""
    V = np.asarray(basis.components, dtype=np.float64)
    step = max(1, chunk_rows(V.shape[1]) // (2 * len(coefficients)))
    out = np.empty((len(weight_sets), len(rows)))
    for start in range(0, len(rows), step):
        chosen = rows[start : start + step]
        t = truth[chosen].toarray()
        genes = [standardize_rows(np.asarray(c[chosen], dtype=np.float64) @ V) for c in coefficients]
        for k, w in enumerate(weight_sets):
            out[k, start : start + step] = pearson_per_row(t, sum(wi * g for wi, g in zip(w, genes)))
    return out


def optuna_study(stats, n_trials: int, journal: bool) -> dict:
    """An Optuna study as level-2 runs it, in memory or appended to a journal file."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp) / "study.journal" if journal else None
        seed = BLEND_CONFIG["seed"]
        (weights, study), seconds = timed(optuna_weights, stats, None, n_trials, seed, storage, "bench")
        finished = [t for t in study.trials if t.state.is_finished()]
        return {"seconds": seconds, "n_trials": len(finished), "score": stats.score(weights)}


def section_component(args) -> dict:
    rng = np.random.default_rng(args.seed + 7)
    truth, truth_seconds = timed(synthetic_truth, args.cells, args.genes, args.components, args.density, args.seed)
    fit_basis = svd_basis if args.basis == "svd" else random_basis
    (projection, components), basis_seconds = timed(fit_basis, truth, args.components, args.seed)
    basis = TargetBasis(components, np.zeros(args.genes, dtype=np.float32))
    coefficients = make_runs(projection, args.runs, args.seed)
    print(f"truth {truth.shape} and basis in {truth_seconds + basis_seconds:.1f} s", file=sys.stderr, flush=True)

    tracemalloc.start()
    stats, precompute_seconds = timed(component_statistics, coefficients, truth, basis)
    precompute_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    weight_sets = rng.dirichlet(np.ones(args.runs), size=args.score_repeats)
    _, score_total = timed(lambda: [stats.score(w) for w in weight_sets])

    whole = args.cells * args.genes <= args.naive_max_elements
    naive_rows = np.arange(args.cells) if whole else np.sort(rng.choice(args.cells, args.naive_rows, replace=False))
    naive_weights = [np.full(args.runs, 1 / args.runs), *rng.dirichlet(np.ones(args.runs), size=args.naive_trials - 1)]
    naive_seconds = [timed(naive_per_cell, coefficients, basis, truth, w, naive_rows)[1] for w in naive_weights]
    naive_all_cells = float(np.mean(naive_seconds)) * args.cells / len(naive_rows)

    check_rows = np.sort(rng.choice(args.cells, min(args.cells, args.check_rows), replace=False))
    check_weights = [*naive_weights, np.eye(args.runs)[0]]
    reference = definition_per_cell(coefficients, basis, truth, check_weights, check_rows)
    exact_diff = max(
        float(np.abs(reference[i] - stats.per_cell(w, check_rows)).max()) for i, w in enumerate(check_weights)
    )

    score_seconds = score_total / len(weight_sets)
    greedy, slsqp = greedy_weights(stats, None, BLEND_CONFIG["greedy_steps"]), slsqp_weights(stats)
    studies = {label: optuna_study(stats, args.trials, journal=label == "journal") for label in ("memory", "journal")}
    return {
        "truth": {
            "cells": args.cells,
            "genes": args.genes,
            "density": truth.nnz / (args.cells * args.genes),
            "seconds": truth_seconds,
        },
        "basis": {"kind": args.basis, "components": int(components.shape[0]), "seconds": basis_seconds},
        "single_scores": [stats.score(np.eye(args.runs)[i]) for i in range(args.runs)],
        "precompute": {"seconds": precompute_seconds, "peak_traced_mib": precompute_peak / 2**20},
        "score_per_trial_ms": score_seconds * 1e3,
        "naive": {"rows": len(naive_rows), "scaled_to_all_cells": not whole, "per_trial_seconds": naive_all_cells},
        "naive_over_component": naive_all_cells / score_seconds,
        "exactness": {"rows": len(check_rows), "weight_sets": len(check_weights), "max_abs_diff": exact_diff},
        "exact": bool(exact_diff <= EXACT_TOLERANCE),
        "best_of_greedy_slsqp": max(stats.score(greedy), stats.score(slsqp)),
        "optuna": studies,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def component_report(r: dict) -> str:
    t, n = r["truth"], r["naive"]
    how = f"{n['rows']:,}-row subset scaled to all cells" if n["scaled_to_all_cells"] else "all cells"
    rows = [
        [
            "naive: blend, reconstruct Z V (float32), per-cell Pearson, per trial",
            f"{n['per_trial_seconds']:.3f} s",
            how,
        ],
        [
            "exact component-space score, per trial",
            f"{r['score_per_trial_ms']:.3f} ms",
            f"{r['naive_over_component']:,.0f}x faster",
        ],
        [
            "precompute (component_statistics)",
            f"{r['precompute']['seconds']:.2f} s",
            f"{r['precompute']['peak_traced_mib']:,.0f} MiB traced",
        ],
    ]
    for label, study in r["optuna"].items():
        rows.append(
            [
                f"{study['n_trials']:,} Optuna trials ({label})",
                f"{study['seconds']:.2f} s",
                f"score {study['score']:.6f}",
            ]
        )
    lines = [
        f"truth {t['cells']:,} x {t['genes']:,}, density {t['density']:.3f}; {r['basis']['kind']} basis of "
        f"{r['basis']['components']}; single runs {', '.join(f'{s:.4f}' for s in r['single_scores'])}",
        "",
        markdown_table(["measure", "value", "detail"], rows),
        "",
        f"exactness on {r['exactness']['rows']:,} cells x {r['exactness']['weight_sets']} weight sets: max per-cell "
        f"difference {r['exactness']['max_abs_diff']:.1e} ({'PASS' if r['exact'] else 'FAIL'}); best of greedy and "
        f"SLSQP {r['best_of_greedy_slsqp']:.6f}; peak RSS {r['peak_rss_mib']:,.0f} MiB",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("methods", "component"), required=True)
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials (methods 300, component 1000)")
    add_out_argument(parser)
    methods = parser.add_argument_group("methods")
    methods.add_argument("--scale", default="small", help="synthetic stores: OUT/oof_<scale> made from OUT/<scale>")
    methods.add_argument("--cases", nargs="+", default=None, help="labels of the cases to blend (default: all found)")
    component = parser.add_argument_group("component")
    component.add_argument("--cells", type=int, default=5000)
    component.add_argument("--genes", type=int, default=3000)
    component.add_argument("--components", type=int, default=64)
    component.add_argument("--runs", type=int, default=5)
    component.add_argument("--density", type=float, default=0.15, help="fraction of non-zero targets")
    component.add_argument("--basis", choices=("svd", "random"), default="svd")
    component.add_argument("--seed", type=int, default=0, help="seed of the truth, basis and runs")
    component.add_argument("--score-repeats", type=int, default=200, help="weight vectors timed for the score")
    component.add_argument("--naive-trials", type=int, default=3)
    component.add_argument("--naive-rows", type=int, default=10_000, help="row subset of the naive timing")
    component.add_argument("--naive-max-elements", type=float, default=3e8, help="naive on all cells up to this size")
    component.add_argument("--check-rows", type=int, default=2000, help="cells of the exactness check")
    args = parser.parse_args(argv)
    args.trials = args.trials or (300 if args.section == "methods" else 1000)
    return args


def main(argv: list[str]) -> int:
    args = arguments(argv)
    if args.section == "methods":
        result = section_methods(args)
        report = methods_report(result)
    else:
        result = section_component(args)
        report = component_report(result)
    path = save_result(args.out, "blend_bench", args.section, result)
    print(report)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
