"""The features' randomized SVD (mmscel.features.randomized_svd) against scikit-learn's TruncatedSVD, same run.

    python bench/svd_bench.py [--matrices multi_inputs cite_inputs] [--fraction 0.25] [--components 128]

Each matrix is generated here (seeded) with the shape and density of the competition's full matrix
(``--fraction`` of its rows, all its columns): rows fall into 16 groups, and a stored value is the
row's depth times its group's level of the column (Gamma), so the spectrum has structure to find.
Both SVDs then fit it in this one process with the features' settings (128 components, 5 power
iterations, 10 oversamples, seed 0, float32 CSR): scikit-learn's TruncatedSVD first, then ours with
all cores, then ours with one thread. Per fit: wall and CPU seconds, peak RSS (the kernel's
high-water mark, reset before each fit) and the sum of the explained variance ratios. Prints one
JSON line per fit and a markdown table. ``--fits`` runs some of them only, in the order given (a table
row without the scikit-learn fit has no baseline beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MIB = 2**20
MATRICES = {  # the competition's full matrices: rows, columns, stored values
    "multi_inputs": (161_877, 228_942, 902_000_000),
    "cite_inputs": (119_651, 22_050, 504_000_000),
    "multi_targets": (105_942, 23_418, 795_000_000),  # the target SVD's matrix (64 components in the features)
}
GROUPS = 16


def generate(n_rows: int, n_cols: int, density: float, seed: int = 0, block_rows: int = 2048) -> sp.csr_matrix:
    """A seeded float32 CSR: Bernoulli(``density``) positions, values depth x group level (see the module)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, GROUPS, n_rows)
    depth = rng.lognormal(0.0, 0.4, n_rows).astype(np.float32)
    level = rng.gamma(0.5, 2.0, (GROUPS, n_cols)).astype(np.float32).ravel()
    expected = n_rows * n_cols * density
    capacity = int(expected + 8 * np.sqrt(expected) + 1024)
    data, indices = np.empty(capacity, np.float32), np.empty(capacity, np.int32)
    indptr = np.zeros(n_rows + 1, np.int64)
    filled = 0
    for start in range(0, n_rows, block_rows):
        rows = min(block_rows, n_rows - start)
        # Gaps between stored values are geometric: sorted, distinct positions without a sort.
        span = rows * n_cols
        gaps = rng.geometric(density, int(span * density + 6 * np.sqrt(span * density) + 64))
        positions = np.cumsum(gaps, dtype=np.int64) - 1
        positions = positions[positions < span]
        local, columns = np.divmod(positions, n_cols)
        end = filled + len(positions)
        indices[filled:end] = columns
        data[filled:end] = depth[start + local] * level[group[start + local] * n_cols + columns]
        indptr[start + 1 : start + rows + 1] = filled + np.searchsorted(local, np.arange(1, rows + 1))
        filled = end
    matrix = sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    # scikit-learn's column variance wants the row pointer in the dtype of the column indices.
    indptr = indptr.astype(np.int32) if filled < 2**31 else indptr
    matrix.data, matrix.indices, matrix.indptr = data[:filled], indices[:filled], indptr  # no copy of the values
    return matrix


def reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")


def status_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process, MiB."""
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measured(fn) -> tuple[object, dict]:
    """Run ``fn()``: its result and its wall s, CPU s (all threads), RSS before and peak RSS during, MiB."""
    reset_peak()
    before = status_mib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    figures = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    figures.update(rss_before_mib=before, peak_rss_mib=status_mib("VmHWM"))
    return result, figures


def fits(components: int) -> dict:
    """The fits compared: name -> a function of the matrix returning the fitted model."""
    from sklearn.decomposition import TruncatedSVD

    from mmscel.features.randomized_svd import RandomizedSVD

    def sklearn_fit(A):
        model = TruncatedSVD(n_components=components, algorithm="randomized", random_state=0)
        model.fit_transform(A)
        return model

    def ours(threads):
        def fit(A):
            model = RandomizedSVD(components, random_state=0, threads=threads)
            model.fit_transform(A)
            return model

        return fit

    return {"sklearn": sklearn_fit, "mmscel": ours(None), "mmscel-1-thread": ours(1)}


def bench_matrix(name: str, fraction: float, components: int, only: list[str] | None = None) -> list[dict]:
    n_rows, n_cols, nnz = MATRICES[name]
    density = nnz / (n_rows * n_cols)
    rows = max(components + 20, round(n_rows * fraction))
    started = time.perf_counter()
    A = generate(rows, n_cols, density)
    made = {"matrix": name, "shape": [rows, n_cols], "nnz": int(A.nnz), "generate_s": time.perf_counter() - started}
    results = []
    available = fits(components)
    for fit_name in only or available:  # in the order asked
        fit = available[fit_name]
        model, figures = measured(lambda fit=fit: fit(A))
        evr = float(np.sum(model.explained_variance_ratio_))
        results.append({**made, "fit": fit_name, **figures, "evr_sum": evr, "threads": os.cpu_count()})
        print(json.dumps(results[-1]), flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = [
        "| matrix | rows x columns | non-zeros | fit | wall s | CPU s | peak RSS MiB (matrix) | EVR sum | vs sklearn |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    baseline = {r["matrix"]: r for r in results if r["fit"].startswith("sklearn")}
    for r in results:
        base = baseline.get(r["matrix"])
        versus = (
            "baseline"
            if r is base
            else "no scikit-learn fit in this run"
            if base is None
            else f"{base['wall_s'] / r['wall_s']:.1f}x faster, EVR {r['evr_sum'] - base['evr_sum']:+.1e}"
        )
        shape = f"{r['shape'][0]:,} x {r['shape'][1]:,}"
        rss = f"{r['peak_rss_mib']:,.0f} ({r['rss_before_mib']:,.0f})"
        lines.append(
            f"| {r['matrix']} | {shape} | {r['nnz'] / 1e6:,.0f} M | {r['fit']} | {r['wall_s']:,.1f} | "
            f"{r['cpu_s']:,.1f} | {rss} | {r['evr_sum']:.5f} | {versus} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrices", nargs="+", choices=sorted(MATRICES), default=["multi_inputs", "cite_inputs"])
    parser.add_argument("--fraction", type=float, default=0.25, help="share of the full matrix's rows")
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--fits", nargs="+", choices=list(fits(2)), help="only these fits (default: all)")
    args = parser.parse_args(argv)
    results = [r for name in args.matrices for r in bench_matrix(name, args.fraction, args.components, args.fits)]
    print(table(results))
    print(f"load average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
