"""Level-1 quality (issue 3, section 7): every learner's CV and last-day score per task on the
`small` synthetic scale beside the mean-profile floor and the oracle, and the share of the
headroom each captures; plus the real BMMC CITE starter (train donor s1d1 -> test donor s1d2)
and the muon Multiome set (K-fold).

Usage: python bench/level1_quality.py [--data bench/out/small] [--only small|real]
Writes bench/out/level1_quality.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mmscel.data.anndata_import import import_anndata
from mmscel.data.cache import prepare
from mmscel.level1 import run_level1
from mmscel.metrics import headroom_share, mean_pearson

REAL = ROOT.parent / "shared" / "real-data"
OUT = ROOT / "bench" / "out"
LEARNERS = ("ridge", "lgbm", "xgb", "catboost", "mlp")


def train_references(data: Path, task: str) -> dict[str, float]:
    """Mean oracle and reachable scores of the train cells each validation scores.

    ``cv`` pools every train cell with a reference (donor CV predicts each cell
    once); ``last_day`` only those of the last training day, which the
    ``last_day`` fold validates on (a later day scores higher here).
    """
    references = pd.read_parquet(data / "truth" / "train_references.parquet")
    references = references[references["task"] == task].set_index("cell_id")
    metadata = pd.read_csv(data / "metadata.csv", usecols=["cell_id", "day"]).set_index("cell_id")
    day = metadata.loc[references.index, "day"].to_numpy()
    last = references[day == day.max()]
    return {
        "cv_oracle": float(references["oracle"].mean()),
        "cv_reachable": float(references["reachable"].mean()),
        "last_day_oracle": float(last["oracle"].mean()),
        "last_day_reachable": float(last["reachable"].mean()),
        "last_day_reference_cells": int(len(last)),
    }


def small_scale(data: Path) -> list[dict]:
    """Run every shipped config on the synthetic data; compare with the floor, the oracle and the
    reachable reference of the same cells."""
    rows = []
    for task in ("cite", "multi"):
        references = train_references(data, task)
        for learner in LEARNERS:
            started = time.perf_counter()
            manifest = run_level1(
                ROOT / "configs" / task / f"{learner}.yaml", data, oof_root=OUT / "oof_small"
            ).manifest
            floor, last_floor = manifest["cv_mean_profile"], manifest["last_day_mean_profile"]
            rows.append(
                {
                    "task": task,
                    "learner": learner,
                    "cv": manifest["cv"],
                    "last_day": manifest["last_day"],
                    "floor": floor,
                    "last_day_floor": last_floor,
                    **references,
                    "headroom_cv": headroom_share(manifest["cv"], floor, references["cv_reachable"]),
                    "headroom_last_day": headroom_share(
                        manifest["last_day"], last_floor, references["last_day_reachable"]
                    ),
                    "headroom_cv_vs_oracle": headroom_share(manifest["cv"], floor, references["cv_oracle"]),
                    "headroom_last_day_vs_oracle": headroom_share(
                        manifest["last_day"], last_floor, references["last_day_oracle"]
                    ),
                    "wall_seconds": manifest["wall_seconds"],
                    "peak_rss_mb": manifest["peak_rss_mb"],
                    "measured_seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def _config(folder: Path, name: str, task: str, learner: str, **extra) -> Path:
    base = yaml.safe_load((ROOT / "configs" / task / f"{learner}.yaml").read_text())
    base.update(extra, name=name)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _run_real(work: Path, data: Path, name: str, task: str, learner: str, extra: dict) -> dict:
    """Manifest of a level-1 run on a real dataset (its config derived from the shipped one; rerun when it changed)."""
    return run_level1(_config(work, name, task, learner, **extra), data, oof_root=work / "oof", overwrite=True).manifest


def _params(task: str, learner: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / task / f"{learner}.yaml").read_text())["params"]


def real_data() -> list[dict]:
    """BMMC CITE (s1d1 -> s1d2, scored on the test donor) and muon Multiome (K-fold CV)."""
    rows = []
    work = OUT / "real"
    work.mkdir(parents=True, exist_ok=True)
    bmmc = work / "bmmc_cite"
    if not bmmc.exists():
        starter = REAL / "bmmc_cite_starter"
        import_anndata(
            bmmc,
            "cite",
            inputs=starter / "train_mod1.h5ad",
            targets=starter / "train_mod2.h5ad",
            test_inputs=starter / "test_mod1.h5ad",
            test_targets=starter / "test_mod2.h5ad",
        )
    prepare(bmmc)
    truth = pd.read_hdf(bmmc / "truth" / "test_cite_targets.h5").to_numpy()
    train_targets = pd.read_hdf(bmmc / "train_cite_targets.h5").to_numpy()
    floor = mean_pearson(truth, np.broadcast_to(train_targets.mean(axis=0), truth.shape))
    # The MLP also as a bag of five seeds (predictions averaged; the same settings otherwise).
    for name, learner, bag in [(f"bmmc_{learner}", learner, {}) for learner in LEARNERS] + [
        ("bmmc_mlp_bag5", "mlp", {"seeds": 5})
    ]:
        extra = {
            **bag,
            "features": {"svd_components": 64, "top_correlated_genes": 3},
            "folds": {"scheme": "random", "n_splits": 5},
        }
        if learner == "ridge":
            extra["params"] = {"alpha": 30.0}
        if learner == "mlp":  # 249 training cells a fold: the shipped batch of 256 is one step an epoch
            extra["params"] = {**_params("cite", "mlp"), "batch_size": 32, "dropout": 0.3}
        if learner in ("lgbm", "xgb", "catboost"):
            extra["targets"] = {
                "space": "svd",
                "components": 16,
                "standardize_cells": True,
            }
        manifest = _run_real(work, bmmc, name, "cite", learner, extra)
        test = np.load(work / "oof" / "cite" / name / "test.npy")
        rows.append(
            {
                "dataset": "bmmc_cite s1d1->s1d2",
                "learner": name.removeprefix("bmmc_"),
                "cv": manifest["cv"],
                "test_donor": mean_pearson(truth, test),
                "mean_profile": floor,
            }
        )
        print(rows[-1], flush=True)
    muon = work / "muon_multi"
    if not muon.exists():
        import_anndata(
            muon,
            "multi",
            mudata=REAL / "pbmc_multiome_muon" / "pbmc_rna_atac.h5mu",
            test_fraction=0.3,
            seed=0,
        )
    prepare(muon)
    for learner in LEARNERS:
        extra = {
            "features": {"svd_components": 64, "target_svd_components": 44},
            "folds": {"scheme": "random", "n_splits": 5},
        }
        manifest = _run_real(work, muon, f"muon_{learner}", "multi", learner, extra)
        rows.append(
            {
                "dataset": "muon multiome (5-fold)",
                "learner": learner,
                "cv": manifest["cv"],
                "mean_profile": manifest["cv_mean_profile"],
            }
        )
        print(rows[-1], flush=True)
    return rows


def markdown_small(rows: list[dict]) -> str:
    """The small-scale rows as the markdown table of BENCHMARKS.md."""
    lines = [
        "| task | learner | CV (donor) | floor / reachable / oracle (CV cells) | **headroom CV** (vs oracle) | last day | floor / reachable / oracle (last-day cells) | **headroom last day** (vs oracle) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['learner']} | {r['cv']:.4f} | {r['floor']:.4f} / {r['cv_reachable']:.4f} / {r['cv_oracle']:.4f} | "
            f"**{r['headroom_cv']:.0%}** ({r['headroom_cv_vs_oracle']:.0%}) | {r['last_day']:.4f} | "
            f"{r['last_day_floor']:.4f} / {r['last_day_reachable']:.4f} / {r['last_day_oracle']:.4f} | "
            f"**{r['headroom_last_day']:.0%}** ({r['headroom_last_day_vs_oracle']:.0%}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=OUT / "small")
    parser.add_argument("--only", choices=("small", "real"))
    args = parser.parse_args()
    results_path = OUT / "level1_quality.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.only in (None, "real"):
        results["real"] = real_data()
        results_path.write_text(json.dumps(results, indent=2))
    if args.only in (None, "small"):
        results["small"] = small_scale(args.data)
        results_path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    if "small" in results:
        print(markdown_small(results["small"]))


if __name__ == "__main__":
    main()
