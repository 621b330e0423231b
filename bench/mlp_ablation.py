"""MLP ablation: variants of the shipped MLP configs, each fitted on its own and in the shipped blend.

    python bench/mlp_ablation.py [--variants cite:tuned,cite:deep,...] [--scale small] [--out bench/out]
    python bench/mlp_ablation.py --report

Each variant is the shipped ``configs/<task>/mlp.yaml`` with some ``params`` changed (``VARIANTS``), written
to ``OUT/ablation/configs/`` under its own run name and fitted by ``mmscel level1`` into a copy of the level-1
store ``OUT/oof_<scale>`` (bench/level1_quality.py; its feature and fold caches and shipped runs are reused).
The shipped config itself is one of them (``{}``), fitted again under another name so that its fit time
shares the run's load.
Per variant: the run's CV, last day, public and private (the local leaderboard), its fit wall and CPU
time; then the shipped blend (``configs/blend.yaml``) with the variant in place of the shipped MLP of its
task: nested CV, public and private of that task's blend, and the variant's weight. Writes
``OUT/mlp_ablation.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, add_out_argument, markdown_table, save_result
from level1_quality import REAL_DATA, Store, imported, real_row
from tune_bench import Bench, fit_and_score, leaderboard, run_name_of

TUNED = {"lr": 0.0014664602198207952, "dropout": 0.38995195119496806, "weight_decay": 7.44204542721606e-05}
TWO_LAYERS = {"hidden": [256, 256], "early_stopping": True}
VARIANTS = {  # params changed from the shipped config ({}: the shipped config)
    "cite": {
        "2x256": TWO_LAYERS,
        # the best trial of the 40-trial CITEseq MLP session (BENCHMARKS.md, Tuning), on two layers
        "2x256_tuned": {**TWO_LAYERS, **TUNED, "batch_size": 64, "loss": "mse"},
        "6x256": {},
        "6x256_mse": {"loss": "mse"},
        "6x256_tuned_mse": {**TUNED, "loss": "mse"},
    },
    "multi": {
        "2_layers": {},
        "4_layers_onecycle": {
            "hidden": [512, 256, 256, 256],
            "schedule": "onecycle",
            "epochs": 40,
            "early_stopping": False,
        },
    },
}
LEARNERS = ("ridge", "lgbm", "xgb", "catboost")  # the shipped runs blended with the MLP variant
REAL = {"cite": "bmmc_cite", "multi": "muon_multi"}  # the real dataset each task's variants also run on
REAL_FOLDS = {"scheme": "random", "n_splits": 5}  # the one change real data needs (one donor, one day)


def variant_config(bench: Bench, task: str, variant: str, dataset: str | None = None) -> Path:
    """The shipped MLP config of ``task`` with the variant's params, named ``<task>_mlp_<variant>``.

    For a real ``dataset`` it is named ``<dataset>_mlp_<variant>`` and its folds are ``REAL_FOLDS``.
    """
    raw = yaml.safe_load((ROOT / "configs" / task / "mlp.yaml").read_text())
    name = f"{dataset or task}_mlp_{variant}"
    raw = {"name": name, **raw, "params": {**raw["params"], **VARIANTS[task][variant]}}
    if dataset is not None:
        raw["folds"] = REAL_FOLDS
    path = bench.configs / f"{name}.yaml"
    path.write_text(f"# configs/{task}/mlp.yaml, variant {variant}\n" + yaml.safe_dump(raw, sort_keys=False))
    return path


def blend_with(bench: Bench, store: Path, task: str, variant: str, run: str) -> dict:
    """The shipped blend with ``run`` as the task's MLP: level2, submit, and the task's leaderboard row."""
    other = "multi" if task == "cite" else "cite"
    raw = yaml.safe_load((ROOT / "configs" / "blend.yaml").read_text())
    name = f"blend_{task}_{variant}"
    raw.update(name=name, runs={task: [f"{task}_{learner}" for learner in LEARNERS] + [run], other: [f"{other}_*"]})
    config = bench.configs / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    level2 = bench.measured("level2", config, store=store, log=f"ablation_{name}_level2")
    bench.mmscel("submit", "--blend", name, store=store, log=f"ablation_{name}_submit")
    manifest = json.loads((store / "blend" / name / "manifest.json").read_text())
    info = manifest["tasks"][task]
    board = leaderboard(bench, store, log=f"ablation_{name}_leaderboard")
    return {"level2": level2, "weights": dict(zip(info["runs"], info["weights"])), "scores": board[f"{task}/{name}"]}


def measure(bench: Bench, variants: list[tuple[str, str]]) -> dict:
    """Fit every variant into a fresh copy of the level-1 store, then blend each with the shipped runs."""
    folder = bench.section_folder("ablation")
    store = bench.store(folder / "store", runs=True)
    configs = {f"{task}:{variant}": variant_config(bench, task, variant) for task, variant in variants}
    runs = fit_and_score(bench, store, configs, log="ablation")
    for label, run in runs.items():
        task, variant = label.split(":")
        run["params"] = VARIANTS[task][variant]
        run["blend"] = blend_with(bench, store, task, variant, run_name_of(configs[label]))
        print(row(label, run), flush=True)
    return {"scale": bench.args.scale, "runs": runs}


def real_rows(bench: Bench, variants: list[tuple[str, str]]) -> list[dict]:
    """Each variant on its task's real dataset (bench/level1_quality.py's imports): CV and the test donor."""
    if not REAL_DATA.exists():
        return []
    rows = []
    for task, variant in variants:
        dataset = REAL[task]
        store = Store(imported(dataset, bench.args.out), bench.root / "ablation" / "real", bench.logs)
        rows.append(
            {"variant": f"{task}:{variant}", **real_row(store, dataset, variant_config(bench, task, variant, dataset))}
        )
        print(f"{dataset} {variant}: CV {rows[-1]['cv']:.4f} test donor {rows[-1].get('test_donor', float('nan')):.4f}")
    return rows


def row(label: str, run: dict) -> str:
    """One markdown row of a variant."""
    scores, blend = run["scores"], run["blend"]["scores"]
    weight = run["blend"]["weights"].get(run["run"], 0.0)
    fit = [f"{run['level1'][key]:.0f}" for key in ("wall_s", "cpu_s")]
    own = [f"{scores[key]:.4f}" for key in ("cv", "last_day", "public", "private")]
    blended = [f"{blend[key]:.4f}" for key in ("cv", "public", "private")]
    return markdown_table(HEADERS, [[label, *own, *fit, *blended, f"{weight:.2f}"]]).splitlines()[-1]


HEADERS = [
    "variant",
    "CV",
    "last day",
    "public",
    "private",
    "fit wall s",
    "fit CPU s",
    "blend nested CV",
    "blend public",
    "blend private",
    "MLP weight",
]


def report(sections: dict) -> str:
    """The markdown tables of a measurement: small, then real data."""
    return ablation_report(sections, "ablation", HEADERS, row)


def ablation_report(sections: dict, key: str, headers: list[str], row_of) -> str:
    """An ablation's tables: the variants of section ``key`` (``row_of(label, run)`` each), then the real data."""
    text = ""
    if key in sections:
        runs = sections[key]["result"]["runs"]
        text += "\n".join([markdown_table(headers, []), *(row_of(label, run) for label, run in runs.items())])
    if "real" in sections:
        rows = sections["real"]["result"]["rows"]
        real = [[r["variant"], r["dataset"], f"{r['cv']:.4f}", _score(r.get("test_donor"))] for r in rows]
        text += "\n\n" + markdown_table(["variant", "dataset", "CV", "test donor"], real)
    return text


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(f"{t}:{v}" for t in VARIANTS for v in VARIANTS[t]))
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--part", default="both", choices=["small", "real", "both"])
    parser.add_argument("--report", action="store_true", help="print the tables of OUT/mlp_ablation.json")
    add_out_argument(parser)
    args = parser.parse_args()
    if not args.report:
        variants = [tuple(item.split(":")) for item in args.variants.split(",")]
        unknown = [f"{t}:{v}" for t, v in variants if v not in VARIANTS.get(t, {})]
        if unknown:
            parser.error(f"unknown variants {unknown}")
        bench = Bench(args)
        if args.part in ("small", "both"):
            save_result(args.out, "mlp_ablation", "ablation", measure(bench, variants))
        if args.part in ("real", "both"):
            save_result(args.out, "mlp_ablation", "real", {"rows": real_rows(bench, variants)})
    print(report(json.loads((args.out / "mlp_ablation.json").read_text())["sections"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
