"""``mmscel synth``: write a whole synthetic competition with its hidden truth."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mmscel
from mmscel.data import layout
from mmscel.data.competition import write_evaluation, write_metadata, write_solution
from mmscel.data.error_text import shown
from mmscel.data.h5_reader import FrameReader
from mmscel.data.synth import names
from mmscel.data.synth.cite import simulate_cite
from mmscel.data.synth.multi import simulate_multi
from mmscel.data.synth.plan import plan_task
from mmscel.data.synth.scales import SCALES
from mmscel.errors import InputError
from mmscel.fsutil import replace_dir, sweep_leftovers, write_json
from mmscel.metrics import pearson_per_row

GENERATOR_VERSION = "2"  # recorded in truth.json, so that a reader can tell which fields to expect
LEADERBOARDS = ("public", "private")
REACHABLE_METHOD = (
    "As the oracle, but for Multiome the open/closed state of each gene's linked peaks is averaged out "
    "(E[exp(cis)] = prod(1 + p (e^w - 1)) given the cell's programs and donor): the oracle also knows which "
    "peaks happen to be open in each cell, which the sparse ATAC counts reveal only where a fragment was "
    "captured. The headroom level-1 is measured against. CITEseq: the oracle itself."
)


def generate(
    out_dir: str | Path,
    scale: str = "tiny",
    seed: int = 0,
    *,
    extras: bool = True,
    raw: bool = False,
    overwrite: bool = False,
) -> dict:
    """Generate a synthetic competition in Kaggle's layout under ``out_dir``.

    The folder is built beside ``out_dir`` under a temporary name and renamed
    into place at the end, so an interrupted run never leaves a partial
    competition. The same seed gives the same bytes.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The folder to write; it must be empty unless ``overwrite``.
    scale : str
        One of ``SCALES``.
    seed : int
        The competition's seed.
    extras : bool
        Also write the extra day-2 donor-27678 CITEseq file and its metadata.
    raw : bool
        Also write the counts as ``*_raw.h5``.
    overwrite : bool
        Replace a non-empty ``out_dir``.

    Returns
    -------
    dict
        The content of ``truth/truth.json``, plus the wall time.

    Raises
    ------
    InputError
        If the scale is unknown, or ``out_dir`` is a file or not empty.
    """
    if scale not in SCALES:
        raise InputError("--scale", f"unknown scale {shown(scale)}; choose one of {', '.join(SCALES)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file, not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(out_dir, "exists and is not empty (pass --overwrite to replace it)")
    sweep_leftovers(out_dir)
    work = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / layout.TRUTH_DIR).mkdir(parents=True)
    try:
        truth = _generate_into(work, SCALES[scale], seed, extras, raw)
        replace_dir(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return truth


def _generate_into(work: Path, scale, seed: int, extras: bool, raw: bool) -> dict:
    started = time.perf_counter()
    plan_rng = np.random.default_rng([seed, 100])
    cite_plan = plan_task(plan_rng, layout.CITE, scale.cite_train, scale.cite_test, scale.cite_leak_rows)
    multi_plan = plan_task(plan_rng, layout.MULTI, scale.multi_train, scale.multi_test)
    ids = names.cell_ids(np.random.default_rng([seed, 101]), len(cite_plan) + len(multi_plan))
    cite_ids, multi_ids = ids[: len(cite_plan)], ids[len(cite_plan) :]
    scored_rows, scored_genes = _multi_scored(np.random.default_rng([seed, 102]), scale)
    cite = simulate_cite(work, scale, cite_plan, cite_ids, seed, raw, extras)
    multi = simulate_multi(work, work / ".scratch", scale, multi_plan, multi_ids, seed, raw, scored_rows, scored_genes)

    _write_metadata(work, cite_plan, cite_ids, cite.cell_type, multi_plan, multi_ids, multi.cell_type)
    cite_test, multi_test = cite_plan["split"] != "train", multi_plan["split"] != "train"
    multi_test_ids = multi_ids[multi_test.to_numpy()]
    with FrameReader(work / f"{layout.MULTI.train_targets}.h5") as reader:
        genes = reader.columns
    rows = write_evaluation(
        work, cite_ids[cite_test.to_numpy()], layout.CITE_PROTEINS, multi_test_ids[scored_rows], genes, scored_genes
    )
    cite_splits = cite_plan.loc[cite_test, "split"].to_numpy()
    multi_splits = multi_plan.loc[multi_test, "split"].to_numpy()[scored_rows]
    write_solution(work / layout.TRUTH_DIR, cite.test_targets, cite_splits, multi.scored_truth, multi_splits)

    truth = _truth(scale, seed, rows, cite_plan, cite, multi, cite_splits, multi_splits)
    write_json(work / layout.TRUTH_DIR / layout.TRUTH_JSON, truth)
    _write_train_references(
        work / layout.TRUTH_DIR / layout.TRAIN_REFERENCES, cite, cite_ids[~cite_test.to_numpy()], multi
    )
    return {**truth, "wall_seconds": round(time.perf_counter() - started, 2)}  # not in the file: same seed, same bytes


def _truth(scale, seed: int, rows: int, cite_plan, cite, multi, cite_splits, multi_splits) -> dict:
    """The content of ``truth/truth.json``: shapes, split sizes and the reference scores."""
    floor_cite = pearson_per_row(cite.test_targets, np.broadcast_to(cite.train_target_mean, cite.test_targets.shape))
    floor_multi = pearson_per_row(multi.scored_truth, multi.scored_mean_profile)
    return {
        "generator": "mmscel synth",
        "generator_version": GENERATOR_VERSION,
        "mmscel_version": mmscel.__version__,
        "scale": scale.name,
        "seed": seed,
        "shapes": _shapes(scale, rows),
        "n_test_cells": {
            "cite": {s: int((cite_splits == s).sum()) for s in LEADERBOARDS},
            "multi_scored": {s: int((multi_splits == s).sum()) for s in LEADERBOARDS},
        },
        "cite_leak_rows": int(cite_plan["leak"].sum()),
        "oracle": _summary(cite.oracle, multi.oracle),
        "reachable": _summary(cite.oracle, multi.reachable),
        "mean_profile": _summary(_by_leaderboard(floor_cite, cite_splits), _by_leaderboard(floor_multi, multi_splits)),
        "oracle_method": _oracle_method(scale),
        "reachable_method": REACHABLE_METHOD,
    }


def _by_leaderboard(scores: np.ndarray, splits: np.ndarray) -> dict[str, np.ndarray]:
    return {split: scores[splits == split] for split in LEADERBOARDS}


def _oracle_method(scale) -> str:
    return (
        "Per-cell Pearson of the noise-free expectation E[y | cell state] with the drawn targets. "
        "E[log1p(scale * X)] for negative binomial X is summed exactly over the support (to ~1e-9), "
        "not estimated from replicates. Test splits are scored on the leaderboard's entries "
        f"(Multiome: scored cells x scored genes); the Multiome train figure uses {min(2000, scale.multi_train)} "
        "sampled train cells x all genes. A reference near the best reachable score, not a strict bound."
    )


def _write_train_references(path: Path, cite, cite_train_ids: np.ndarray, multi) -> None:
    """Per-cell oracle and reachable scores of the train cells they were taken on, so that a
    validation fold can be set beside the references of its own cells."""
    frames = [
        pd.DataFrame(
            {
                "task": "cite",
                "cell_id": cite_train_ids,
                "oracle": cite.oracle["train"],
                "reachable": cite.oracle["train"],
            }
        ),
        pd.DataFrame(
            {
                "task": "multi",
                "cell_id": multi.train_reference_cells,
                "oracle": multi.oracle["train"],
                "reachable": multi.reachable["train"],
            }
        ),
    ]
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)


def _multi_scored(rng: np.random.Generator, scale) -> tuple[np.ndarray, np.ndarray]:
    """Scored Multiome test rows (sorted) and, per scored row, its sorted scored gene columns."""
    n_cells, n_genes = scale.multi_scored
    rows = np.sort(rng.choice(scale.multi_test, size=n_cells, replace=False))
    genes = np.empty((n_cells, n_genes), dtype=np.int32)
    for start in range(0, n_cells, 1024):
        stop = min(n_cells, start + 1024)
        keys = rng.random((stop - start, scale.multi_genes))
        genes[start:stop] = np.sort(np.argpartition(keys, n_genes - 1, axis=1)[:, :n_genes], axis=1)
    return rows, genes


def _write_metadata(work, cite_plan, cite_ids, cite_types, multi_plan, multi_ids, multi_types) -> None:
    multi_types = np.where(multi_plan["split"] == "train", multi_types, layout.HIDDEN_CELL_TYPE)
    frames = [
        pd.DataFrame(
            {
                "cell_id": cite_ids,
                "day": cite_plan["day"],
                "donor": cite_plan["donor"],
                "cell_type": cite_types,
                "technology": "citeseq",
            }
        ),
        pd.DataFrame(
            {
                "cell_id": multi_ids,
                "day": multi_plan["day"],
                "donor": multi_plan["donor"],
                "cell_type": multi_types,
                "technology": "multiome",
            }
        ),
    ]
    write_metadata(work / layout.METADATA, pd.concat(frames, ignore_index=True))


def _shapes(scale, rows: int) -> dict:
    return {
        "cite": {
            "train_inputs": [scale.cite_train, scale.cite_genes],
            "train_targets": [scale.cite_train, len(layout.CITE_PROTEINS)],
            "test_inputs": [scale.cite_test, scale.cite_genes],
        },
        "multi": {
            "train_inputs": [scale.multi_train, scale.multi_peaks],
            "train_targets": [scale.multi_train, scale.multi_genes],
            "test_inputs": [scale.multi_test, scale.multi_peaks],
            "scored": list(scale.multi_scored),
        },
        "metadata_rows": scale.cite_train + scale.cite_test + scale.multi_train + scale.multi_test,
        "evaluation_rows": rows,
    }


def _summary(cite: dict[str, np.ndarray], multi: dict[str, np.ndarray]) -> dict:
    """Mean per-cell scores per task and split, and the pooled leaderboards."""
    out = {"cite": {}, "multi": {}, "leaderboard": {}}
    for task_name, scores in (("cite", cite), ("multi", multi)):
        for split in ("train", "public", "private"):
            if split in scores and len(scores[split]):
                out[task_name][split] = round(float(np.mean(scores[split])), 6)
    for split in ("public", "private"):
        pooled = np.concatenate([cite.get(split, np.zeros(0)), multi.get(split, np.zeros(0))])
        out["leaderboard"][split] = round(float(pooled.mean()), 6) if pooled.size else None
    return out
