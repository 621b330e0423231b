"""The cross-fitted cis correction of the Multiome blend at the competition's width, timed.

    python bench/cis_bench.py [--cells 16384] [--genes 2342] [--folds 3] [--out bench/out]
    PYTHONPATH=$OLD/src python bench/cis_bench.py ...     # another commit's code, same data

Generates (seeded) what level-2 hands ``mmscel.blend.cis_fit.cross_fit_cis``: binarised ATAC with the
competition's 228,942 peaks and 5,572 draws a cell (its mean number of stored values; ~5,500 once
repeats merge), gene targets at its 32 % density (``--genes`` of them), out-of-fold predictions as 128
target-SVD coefficients (the truth projected on a random orthonormal basis, plus noise), and ``--folds``
folds; then cross-fits the correction in this process at the settings the imported code ships (its
``CisConfig`` defaults: 3 peaks a gene, alpha 300, 8,192 ranking cells, and from 6976b7c on at most
32,768 fitted cells). The ranking product, the costly step, grows with the ranking cells (at most 8,192
whatever the number of cells) and with the genes: ``--genes 2342`` is a tenth of the competition's
23,418 (a full-width run took 9.6 times as long). Prints one JSON line (wall and CPU seconds, peak RSS,
the held-out scores and a digest of the fitted peaks, equal between two commits that fit the same maps)
and appends it to ``OUT/cis_bench.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

PEAKS, PEAKS_PER_CELL, GENE_DENSITY, COMPONENTS = 228_942, 5_572, 0.32, 128


def binary_inputs(rng, n_cells: int, n_peaks: int, per_cell: int) -> sp.csr_matrix:
    """Cells x peaks, float32 ones at ``per_cell`` uniform positions a cell (duplicates merged)."""
    columns = rng.integers(0, n_peaks, (n_cells, per_cell))
    columns.sort(axis=1)
    keep = np.ones(columns.shape, bool)
    keep[:, 1:] = columns[:, 1:] != columns[:, :-1]
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    indices = columns[keep].astype(np.int32)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_cells, n_peaks))


def gene_targets(rng, inputs: sp.csr_matrix, n_genes: int) -> sp.csr_matrix:
    """Cells x genes at ``GENE_DENSITY``: a cell-specific level, plus a few genes that follow one peak each."""
    n_cells = inputs.shape[0]
    values = sp.random(n_cells, n_genes, density=GENE_DENSITY, format="csr", random_state=rng, dtype=np.float32)
    values.data = np.log1p(1 + 4 * values.data)
    linked = inputs[:, : n_genes // 10].toarray()
    return sp.csr_matrix(values + sp.csr_matrix(np.pad(linked, ((0, 0), (0, n_genes - linked.shape[1])))))


def fold_predictions(rng, truth: sp.csr_matrix):
    """A random orthonormal basis of 128 components and the truth's noisy coefficients in it."""
    from mmscel.targets.base import TargetBasis

    components = np.linalg.qr(rng.normal(size=(truth.shape[1], COMPONENTS)))[0].T.astype(np.float32)
    mean = np.asarray(truth.mean(axis=0)).ravel().astype(np.float32)
    coefficients = np.asarray(truth @ components.T) - mean @ components.T
    coefficients += rng.normal(scale=coefficients.std(), size=coefficients.shape)
    return TargetBasis(components, mean), coefficients.astype(np.float32)


def digest(maps) -> str:
    """Of each map's peaks, in order within a gene: equal when two fits chose the same peaks."""
    h = hashlib.sha256()
    for each in maps:
        h.update(np.sort(each.peaks, axis=1).tobytes())
    return h.hexdigest()[:16]


def code_version(source: Path) -> str:
    """The commit of the checkout that holds ``source`` ("+changes" when files under it differ), or its path."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".")  # under ``source`` only
    return f"{commit}{'+changes' if changed else ''}" if commit else str(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16_384)
    parser.add_argument("--genes", type=int, default=2_342)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()

    import mmscel
    from mmscel.blend.cis_fit import cross_fit_cis
    from mmscel.blend.run import CisConfig

    code = code_version(Path(mmscel.__file__).resolve().parents[1])  # before the run: the code it imported
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    inputs = binary_inputs(rng, args.cells, PEAKS, PEAKS_PER_CELL)
    truth = gene_targets(rng, inputs, args.genes)
    basis, predictions = fold_predictions(rng, truth)
    folds = np.arange(args.cells) % args.folds
    generated = time.perf_counter() - started

    wall, cpu = time.perf_counter(), time.process_time()
    settings = CisConfig().model_dump()  # what the code it runs ships
    fitted = cross_fit_cis(inputs, predictions, basis, truth, folds, seed=0, **settings)
    result = {
        "code": code,
        "cells": args.cells,
        "peaks": PEAKS,
        "genes": args.genes,
        "folds": args.folds,
        "settings": settings,
        "stored_a_cell": round(inputs.nnz / args.cells, 1),
        "generate_s": round(generated, 1),
        "cross_fit_s": round(time.perf_counter() - wall, 1),
        "cross_fit_cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "load_1min": round(os.getloadavg()[0], 1),
        "held_out_base": round(fitted.base, 6),
        "held_out_corrected": round(fitted.corrected, 6),
        "peaks_digest": digest([fitted.full, *(fitted.by_fold[f] for f in sorted(fitted.by_fold))]),
    }
    print(json.dumps(result))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "cis_bench.jsonl", "a") as handle:
        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
