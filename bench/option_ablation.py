"""Options ablation: the 1st-place solution's data-side techniques, each as one option of a shipped config.

    python bench/option_ablation.py [--variants cite:mlp:refit,...] [--part small|real|both] [--out bench/out]
    python bench/option_ablation.py --report

Each variant is a shipped ``configs/<task>/<learner>.yaml`` with ``--set`` settings (``VARIANTS``), written to
``OUT/tune/configs/`` under its own run name and fitted by ``mmscel level1`` into a copy of the level-1 store
``OUT/oof_<scale>`` (bench/level1_quality.py; its feature and fold caches and shipped runs are reused). The
shipped config itself (``shipped``) is fitted again under another name, so that its fit time shares the run's
load. Per variant: the run's CV, last day, public and private, its fit wall and CPU time; then the shipped
blend (``configs/blend.yaml``) with the variant in place of its learner's shipped run: the task's blend
nested CV, public and private, and the variant's weight in it (not for a Multiome feature change: its runs
predict another target space, which the shipped runs do not share). A variant of ``all`` applies its settings
to every shipped config of the task and blends those runs together (a Multiome feature change, blended).

``real``: the same variants, nothing else changed (the shipped ``folds.scheme: auto`` takes random folds on
one donor), on the BMMC CITE starter (CV on donor s1d1, the test donor s1d2) and the muon PBMC Multiome set
(CV), as bench/level1_quality.py imports them; the per-batch feature variants are left out there, since
those sets have one donor and one day. Writes ``OUT/option_ablation.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHIPPED_LEARNERS, add_out_argument, load_result, markdown_table, save_result
from level1_quality import REAL_DATA, Store, imported, real_row
from mlp_ablation import ablation_report
from tune_bench import Bench, fit_and_score, leaderboard, run_name_of

REFIT = ["test_predictions=refit"]  # test predictions from one fit on every training cell, not the fold mean
BOTH = ["test_predictions=fold_mean_and_refit"]  # the mean of the folds' mean and the refit
TARGET_CENTRING = ["targets.batch_centering=true"]  # each donor x day batch's target median subtracted
BATCH_FEATURES = ["features.batch_svd_components=16", "features.batch_cell_types=true"]
SEEDS = ["seeds=3"]  # a bag of three copies per fold, predictions averaged
WINNER_MLP = [  # the 1st place's network: a wide encoder, a decoder of blocks with averaged heads, an MSE aux loss
    "params.hidden=[2048, 512]",
    "params.decoder_blocks=2",
    "params.heads=3",
    "params.aux_loss=mse",
    "params.schedule=onecycle",
    "params.epochs=40",
    "params.early_stopping=false",
]
UNSCALED = ["params.standardize_inputs=false"]  # the raw SVD scores: the leading components dominate the inputs
UNSCALED_MLP = {"unscaled_inputs": UNSCALED, "unscaled_inputs_seeds_3": UNSCALED + SEEDS}
UNSCALED_RIDGE = {"unscaled_inputs": ["params.standardize=false"]}
DAY = ["features.day=true"]  # the sampling day as a feature column
FEW_ROWS = {  # the MLP's epochs on few cells: at least that many training rows seen (0: a fixed ``epochs``)
    "min_rows_seen_0": ["params.min_rows_seen=0"],
    "min_rows_seen_20000": ["params.min_rows_seen=20000"],
    "min_rows_seen_40000": ["params.min_rows_seen=40000"],
    "min_rows_seen_80000": ["params.min_rows_seen=80000"],
}
NOT_FROM_FOLDS = ["params.epochs_from_folds=false"]
CITE_FEW_ROWS = {  # the CITEseq MLP chooses its epochs on the folds, up to 40,000 rows seen: other ranges, or fixed
    "fixed_epochs": [*NOT_FROM_FOLDS, "params.min_rows_seen=0"],
    **{f"min_rows_seen_{n}": [*NOT_FROM_FOLDS, f"params.min_rows_seen={n}"] for n in (20000, 40000, 80000)},
    "epochs_from_folds_80000": ["params.min_rows_seen=80000"],
}
MORE_COMPONENTS = {"shipped": [], "components_32": ["targets.components=32"]}  # the GBDTs fit 32 target directions
GBDT = {  # the variants of XGBoost, the same on both tasks
    **MORE_COMPONENTS,
    "target_centring": TARGET_CENTRING,
    "refit": REFIT,
}
MULTI_FEATURES = {  # feature changes of the Multiome configs: another target space, so blended only all together
    "target_rows_normalized": ["features.target_median_normalize=true", "features.target_clip_quantile=0.001"],
    "atac_row_median": ["features.transforms=[row_median]"],
    "binary_svd": ["features.binary_svd_components=64"],
    "target_imputation": ["features.target_impute_components=64"],
}
VARIANTS = {  # task -> learner -> variant -> --set settings over the shipped config ([]: the shipped config)
    "cite": {
        "mlp": {
            "shipped": [],
            "target_centring": TARGET_CENTRING,
            "target_median_normalize": ["targets.median_normalize=true"],
            "target_clip": ["targets.clip_quantile=0.01"],
            "input_imputation": ["features.impute_components=64"],
            "batch_features": BATCH_FEATURES,
            "no_cell_stats": ["features.cell_stats=false"],
            "seeds_3": SEEDS,
            "winner_network": WINNER_MLP,
            "refit": REFIT,
            "fold_mean_and_refit": BOTH,
            **UNSCALED_MLP,
            "day": DAY,
            **CITE_FEW_ROWS,
        },
        "xgb": GBDT,
        "lgbm": MORE_COMPONENTS,  # XGBoost's best change, on the other GBDTs
        "catboost": MORE_COMPONENTS,
        "ridge": {"shipped": [], "alpha_30": ["params.alpha=30"], **UNSCALED_RIDGE},
        "all": {"fold_mean_and_refit": BOTH},  # every config, blended
    },
    "multi": {
        "mlp": {
            "shipped": [],
            "target_centring": TARGET_CENTRING,
            **MULTI_FEATURES,
            "batch_features": BATCH_FEATURES,
            "seeds_3": SEEDS,
            "winner_network": WINNER_MLP,
            "refit": REFIT,
            "fold_mean_and_refit": BOTH,
            **UNSCALED_MLP,
            **FEW_ROWS,
        },
        "xgb": GBDT,
        "lgbm": MORE_COMPONENTS,
        "catboost": MORE_COMPONENTS,
        "ridge": {"shipped": [], **UNSCALED_RIDGE},
        "all": {
            "fold_mean_and_refit": BOTH,
            "target_svd_128": ["features.target_svd_components=128"],
            **MULTI_FEATURES,
            "day": DAY,
            "svd_64": ["features.svd_components=64"],  # fewer input components: the MLP's raw inputs less noisy
        },  # every config, blended
    },
}
ONE_BATCH_SKIPPED = ("batch_features",)  # meaningless on one donor and one day
REAL = {"cite": "bmmc_cite", "multi": "muon_multi"}


def variant_config(
    bench: Bench, task: str, learner: str, variant: str, dataset: str | None = None, owner: str | None = None
) -> Path:
    """``configs/<task>/<learner>.yaml`` with the variant's settings, named ``<task or dataset>_<learner>_<variant>``.

    ``owner`` is the key of ``VARIANTS[task]`` the settings are under (default ``learner``; ``all`` for a
    variant of every shipped config of the task).
    """
    from mmscel.config_overrides import apply_overrides

    settings = VARIANTS[task][owner or learner][variant]
    raw = yaml.safe_load((ROOT / "configs" / task / f"{learner}.yaml").read_text())
    raw = apply_overrides(raw, settings)
    name = f"{dataset or task}_{learner}_{variant}"
    raw = {"name": name, **{key: value for key, value in raw.items() if key != "name"}}
    bench.configs.mkdir(parents=True, exist_ok=True)  # a fresh OUT has no tuning section that made it
    path = bench.configs / f"{name}.yaml"
    header = f"# configs/{task}/{learner}.yaml with {' '.join(settings) or 'none'}\n"
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return path


def blend_with(bench: Bench, store: Path, task: str, name: str, runs: list[str]) -> dict:
    """The shipped blend of ``runs`` for ``task`` (the other task's shipped runs alike); the task's blend row.

    The other task's runs are named one by one: the store also holds its variants, some in another target space.
    """
    other = "multi" if task == "cite" else "cite"
    raw = yaml.safe_load((ROOT / "configs" / "blend.yaml").read_text())
    raw.update(name=name, runs={task: runs, other: [f"{other}_{learner}" for learner in SHIPPED_LEARNERS]})
    config = bench.configs / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    bench.measured("level2", config, store=store, log=f"options_{name}_level2")
    bench.mmscel("submit", "--blend", name, store=store, log=f"options_{name}_submit")
    info = json.loads((store / "blend" / name / "manifest.json").read_text())["tasks"][task]
    board = leaderboard(bench, store, log=f"options_{name}_leaderboard")
    return {"weights": dict(zip(info["runs"], info["weights"])), "scores": board[f"{task}/{name}"]}


def shipped_mates(task: str, learner: str) -> list[str]:
    """The task's shipped runs but ``learner``'s."""
    return [f"{task}_{mate}" for mate in SHIPPED_LEARNERS if mate != learner]


def measure(bench: Bench, variants: list[tuple[str, str, str]], fresh: bool) -> dict:
    """Fit and blend each variant in a copy of the level-1 store, saving each result as it ends.

    A variant already measured with the same config is kept (``fresh``: none is), so that a run killed
    midway goes on with the variants it lacks; a variant's half-fitted run is removed and fitted whole,
    so that its fit time is that of one fit.
    """
    folder = bench.root / "options"
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    store = bench.store(folder / "store", runs=True)
    saved = {} if fresh else (load_result(bench.args.out, "option_ablation", "small") or {}).get("runs", {})
    for variant in variants:
        task, learner, name = variant
        label, configs = ":".join(variant), variant_configs(bench, task, learner, name)
        texts = {key: config.read_text() for key, config in configs.items()}
        if saved.get(label, {}).get("config_text") == texts:
            print(f"{label}: measured, kept", flush=True)
            continue
        for config in configs.values():
            shutil.rmtree(store / task / run_name_of(config), ignore_errors=True)
        fitted = fit_and_score(bench, store, configs, log="options")
        run = fitted[label] if learner != "all" else pipeline_run(fitted)
        run.update(settings=VARIANTS[task][learner][name], config_text=texts)
        names = [run_name_of(config) for config in configs.values()]
        if learner == "all":
            run["blend"] = blend_with(bench, store, task, f"blend_{task}_all_{name}", names)
        elif blendable(task, run["settings"]):
            run["blend"] = blend_with(
                bench, store, task, f"blend_{task}_{learner}_{name}", shipped_mates(task, learner) + names
            )
        saved[label] = run
        save_result(bench.args.out, "option_ablation", "small", {"scale": bench.args.scale, "runs": saved})
        print(row(label, run), flush=True)
    return {"scale": bench.args.scale, "runs": saved}


def variant_configs(bench: Bench, task: str, learner: str, variant: str) -> dict[str, Path]:
    """Label -> config: the variant's config, or one per shipped learner for a variant of them ``all``."""
    if learner != "all":
        return {f"{task}:{learner}:{variant}": variant_config(bench, task, learner, variant)}
    return {
        f"{task}:{mate}:{variant}": variant_config(bench, task, mate, variant, owner="all") for mate in SHIPPED_LEARNERS
    }


def pipeline_run(fitted: dict[str, dict]) -> dict:
    """A variant of every shipped config as one row: its runs, their fit times summed, no scores of its own."""
    level1 = {key: sum(run["level1"][key] for run in fitted.values()) for key in ("wall_s", "cpu_s")}
    return {"run": None, "runs": fitted, "level1": level1, "scores": None}


def blendable(task: str, settings: list[str]) -> bool:
    """Whether the variant predicts in the shipped runs' target space (a Multiome feature change refits it)."""
    return not (task == "multi" and any(setting.startswith("features.") for setting in settings))


def real_rows(bench: Bench, variants: list[tuple[str, str, str]]) -> list[dict]:
    """Each variant on its task's real dataset: CV, and the test donor's score for BMMC CITE."""
    if not REAL_DATA.exists():
        return []
    rows = []
    for task, learner, variant in variants:
        if variant in ONE_BATCH_SKIPPED or learner == "all":
            continue
        dataset = REAL[task]
        store = Store(imported(dataset, bench.args.out), bench.root / "options" / "real", bench.logs)
        config = variant_config(bench, task, learner, variant, dataset)
        rows.append({"variant": f"{task}:{learner}:{variant}", **real_row(store, dataset, config)})
        print(f"{dataset} {learner} {variant}: CV {rows[-1]['cv']:.4f}", flush=True)
    return rows


def merged_real_rows(bench: Bench, variants: list[tuple[str, str, str]]) -> list[dict]:
    """The real-data rows of ``variants``, measured now, in place of their earlier rows; the other rows kept."""
    earlier = (load_result(bench.args.out, "option_ablation", "real") or {}).get("rows", [])
    fresh = real_rows(bench, variants)
    measured = {row["variant"] for row in fresh}
    return [row for row in earlier if row["variant"] not in measured] + fresh


HEADERS = ["variant", "settings", "CV", "last day", "public", "private", "fit wall s", "fit CPU s"]
HEADERS += ["blend nested CV", "blend public", "blend private", "weight"]


def row(label: str, run: dict) -> str:
    """One markdown row of a variant."""
    scores = run["scores"]
    fit = [f"{run['level1'][key]:.0f}" for key in ("wall_s", "cpu_s")]
    own = [f"{scores[key]:.4f}" for key in ("cv", "last_day", "public", "private")] if scores else [""] * 4
    blended = ["", "", "", ""]  # another target space than the shipped runs': see blendable()
    if "blend" in run:
        blend = run["blend"]["scores"]
        blended = [f"{blend[key]:.4f}" for key in ("cv", "public", "private")]
        blended.append(f"{run['blend']['weights'].get(run['run'], 0.0):.2f}" if run["run"] else "")
    return markdown_table(HEADERS, [[label, settings_cell(run), *own, *fit, *blended]]).splitlines()[-1]


def settings_cell(run: dict) -> str:
    return ", ".join(f"`{s}`" for s in run["settings"]) or "(shipped)"


def report(sections: dict) -> str:
    """The markdown tables of a measurement: small, then real data."""
    return ablation_report(sections, "small", HEADERS, row)


def all_variants() -> list[str]:
    return [f"{t}:{lr}:{v}" for t, learners in VARIANTS.items() for lr, vs in learners.items() for v in vs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(all_variants()), help="TASK:LEARNER:VARIANT, comma-separated")
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--part", default="both", choices=["small", "real", "both"])
    parser.add_argument("--fresh", action="store_true", help="measure every variant again (default: keep those done)")
    parser.add_argument("--report", action="store_true", help="print the tables of OUT/option_ablation.json")
    add_out_argument(parser)
    args = parser.parse_args()
    if not args.report:
        unknown = sorted(set(args.variants.split(",")) - set(all_variants()))
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {', '.join(all_variants())}")
        variants = [tuple(item.split(":")) for item in args.variants.split(",")]
        bench = Bench(args)
        if args.part in ("small", "both"):
            save_result(args.out, "option_ablation", "small", measure(bench, variants, args.fresh))
        if args.part in ("real", "both"):
            save_result(args.out, "option_ablation", "real", {"rows": merged_real_rows(bench, variants)})
    print(report(json.loads((args.out / "option_ablation.json").read_text())["sections"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
