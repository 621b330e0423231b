"""Settings that bring the whole competition within a time budget, and what they cost in score on ``small``.

    python bench/time_budget.py --part scores [--seeds 0,1] [--profiles NAME,...]   # each profile's scores on small
    python bench/time_budget.py --part full [--profiles NAME,...]                  # its changed stages at full size
    python bench/time_budget.py --report [--hours 3]

A *profile* is the shipped pipeline with some level-1 configs left out and some fitted with ``--set``
settings (``PROFILES``); level-2 is ``configs/blend.yaml`` over the runs the profile keeps.

``scores``: per generator seed, a store of its own (``OUT/time_budget/small_seed<S>/``, cache and ``oof``) on the
synthetic competition of that seed (``OUT/small``, ``OUT/small_seed1``); every shipped config is fitted there
once, each changed config under its own run name (``<task>_<learner>_<settings>``, shared by the profiles that
change it alike), then the profile's blend, submission and scores (public and private, per task and pooled), as
``mmscel score`` computes them. Steps already done are not redone (``mmscel level1`` keeps a finished identical
run).

``full``: each profile's changed level-1 configs fitted into the store of the full-size end-to-end run
(bench/end_to_end.py, ``OUT/oof_e2e_full``), each a measured process (wall, CPU, peak RSS, load; a killed
attempt is counted as there). The profile's wall at full size is then the end-to-end run's ``prepare``, feature
stages and unchanged level-1 stages, these measured stages, and the end-to-end level-2 and submit: those blend
all ten runs, a profile fewer (the cis correction and the submission cost the same, Optuna's trials less), so
that part is an upper bound.

``--scale tiny`` scores the profiles on the tiny competitions instead; ``--smoke`` does so into /tmp/bench_smoke.
Writes sections ``small`` (or ``tiny``) and ``full`` of ``OUT/time_budget.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    SHIPPED_LEARNERS,
    SHIPPED_TASKS,
    add_out_argument,
    collect_interrupted,
    load_result,
    markdown_table,
    mmscel_command,
    run_command,
    run_measured,
    save_result,
    seeded_competition,
    stage_totals,
    submission_scores,
)

DROP = None  # a learner the profile leaves out
ONE_SEED = ["seeds=1"]
PROFILES: dict[str, dict[str, dict[str, list[str] | None]]] = {  # task -> learner -> settings, or DROP
    "shipped": {},
    "no_zero_weights": {"multi": {"xgb": DROP, "catboost": DROP}},  # weight 0 in the shipped blend on both seeds
    "multi_mlp_one_seed": {"multi": {"xgb": DROP, "catboost": DROP, "mlp": ONE_SEED}},
    "mlps_one_seed": {"cite": {"mlp": ONE_SEED}, "multi": {"xgb": DROP, "catboost": DROP, "mlp": ONE_SEED}},
    "lean": {"cite": {"xgb": DROP, "mlp": ONE_SEED}, "multi": {"xgb": DROP, "catboost": DROP, "mlp": ONE_SEED}},
}
SPLITS = ("public", "private")
SMOKE_OUT = Path("/tmp/bench_smoke")


def runs_of(profile: str) -> dict[str, dict[str, str]]:
    """Task -> learner -> run name: the runs the profile blends (changed configs under a name of their own)."""
    changes = PROFILES[profile]
    runs = {}
    for task in SHIPPED_TASKS:
        kept = {}
        for learner in SHIPPED_LEARNERS:
            settings = changes.get(task, {}).get(learner, [])
            if settings is DROP:
                continue
            kept[learner] = changed_run(task, learner, settings) if settings else f"{task}_{learner}"
        runs[task] = kept
    return runs


def changed_run(task: str, learner: str, settings: list[str]) -> str:
    """The run name of a shipped config with ``settings`` (profiles with the same change share the run)."""
    return "_".join([task, learner, *(re.sub(r"[^A-Za-z0-9]+", "_", setting) for setting in settings)])


def changed_configs(profile: str) -> list[tuple[str, str, list[str]]]:
    """(task, learner, settings) of each config the profile fits with settings of its own."""
    return [
        (task, learner, settings)
        for task, learners in PROFILES[profile].items()
        for learner, settings in learners.items()
        if settings
    ]


def level1_command(task: str, learner: str, settings: list[str], run: str, where: list) -> list:
    """``mmscel level1`` of the shipped config, with ``settings`` under the run name ``run`` when there are some."""
    sets = [item for setting in ([*settings, f"name={run}"] if settings else []) for item in ("--set", setting)]
    return mmscel_command() + ["level1", ROOT / "configs" / task / f"{learner}.yaml", *sets, *where]


# ----------------------------------------------------------------------------- scores


def profile_scores(out: Path, scale: str, seed: int, profiles: list[str]) -> dict:
    """Profile -> scores (task -> split -> score, ``pooled`` too) on the competition of ``scale`` and ``seed``."""
    data = seeded_competition(scale, seed, out)
    folder = out / "time_budget" / f"{scale}_seed{seed}"
    where = ["--data", data, "--cache", folder / "cache", "--oof", folder / "oof"]
    logs = out / "logs" / "time_budget" / f"{scale}_seed{seed}"
    run_command(mmscel_command() + ["prepare", *where[:4]], log=logs / "prepare.log")
    scores = {}
    for profile in profiles:
        runs = runs_of(profile)
        for task, learners in runs.items():
            for learner, run in learners.items():
                settings = PROFILES[profile].get(task, {}).get(learner) or []
                run_command(level1_command(task, learner, settings, run, where), log=logs / f"level1_{run}.log")
        blend = f"budget_{profile}"
        sets = ["--set", f"name={blend}"]
        for task, learners in runs.items():
            sets += ["--set", f"runs.{task}={json.dumps(list(learners.values()))}"]
        level2 = ["level2", ROOT / "configs" / "blend.yaml", *sets, *where]
        run_command(mmscel_command() + level2, log=logs / f"level2_{profile}.log")
        submission = folder / "submissions" / f"{blend}.csv.gz"
        submit = ["submit", "--blend", blend, "--out", submission, *where]
        run_command(mmscel_command() + submit, log=logs / f"submit_{profile}.log")
        scores[profile] = {"runs": runs, "scores": submission_scores(data, submission)}
        print(f"seed {seed} {profile}: {scores[profile]['scores']['pooled']}", flush=True)
    return scores


# ----------------------------------------------------------------------------- full


def full_stages(out: Path, profiles: list[str], saved: dict) -> dict:
    """``runs``: run name -> the measured ``mmscel level1`` of each changed config at full size (kept when
    recorded); ``interrupted``: run name -> its killed attempts, saved before each attempt."""
    data, store = out / "full", out / "oof_e2e_full"
    where = ["--data", data, "--oof", store]
    for profile in profiles:
        for task, learner, settings in changed_configs(profile):
            run = changed_run(task, learner, settings)
            if run in saved.get("runs", {}):
                continue
            progress = out / "logs" / f"time_budget_full_{run}.progress.json"
            interrupted = saved.setdefault("interrupted", {}).setdefault(run, [])
            collect_interrupted(progress, interrupted)
            save_result(out, "time_budget", "full", saved)
            print(f"full {run} ...", flush=True)
            log = out / "logs" / f"time_budget_full_{run}.log"
            result = run_measured(level1_command(task, learner, settings, run, where), log=log, progress=progress)
            saved.setdefault("runs", {})[run] = {**result, "interrupted": interrupted}
            save_result(out, "time_budget", "full", saved)
    return saved


def profile_wall(profile: str, stages: dict, measured: dict) -> tuple[float | None, float | None]:
    """The profile's wall seconds at full size and its peak RSS in MiB (None, None while a stage is missing)."""
    records = [stages.get(name) for name in ("prepare", *(f"features_{t}" for t in SHIPPED_TASKS), "level2", "submit")]
    for task, learners in runs_of(profile).items():
        for learner, run in learners.items():
            shipped = run == f"{task}_{learner}"
            records.append(stages.get(f"level1_{task}_{learner}") if shipped else measured.get(run))
    if any(record is None for record in records):
        return None, None
    totals = [stage_totals(record) for record in records]
    return sum(total["wall_s"] for total in totals), max(total["peak_rss_mib"] for total in totals)


# ----------------------------------------------------------------------------- report


def report(out: Path, hours: float, scale: str) -> str:
    """One row per profile: its changes, full-size wall and peak, scores on ``scale`` (mean over the seeds)."""
    scored = load_result(out, "time_budget", scale) or {}
    measured = (load_result(out, "time_budget", "full") or {}).get("runs", {})
    stages = (load_result(out, "end_to_end", "full") or {}).get("stages", {})
    seeds = sorted(scored)
    rows = []
    for profile in PROFILES:
        wall, peak = profile_wall(profile, stages, measured)
        row = [profile, changes_cell(profile)]
        if wall is None:
            row += [None, None, None]
        else:
            row += [f"{wall / 3600:.2f}", "yes" if wall <= hours * 3600 else "no", f"{peak / 1024:.1f}"]
        scores = {key: mean_score(scored, seeds, profile, *key) for key in SCORE_COLUMNS}
        row += [None if value is None else f"{value:.4f}" for value in scores.values()]
        for split in SPLITS:
            shipped, own = mean_score(scored, seeds, "shipped", "pooled", split), scores["pooled", split]
            row.append(None if shipped is None or own is None else f"{own - shipped:+.4f}")
        rows.append(row)
    headers = ["profile", "changes", "full-size wall h", f"≤ {hours:g} h", "peak GiB"]
    headers += [f"{task} {split}" for task, split in SCORE_COLUMNS] + [f"Δ pooled {split}" for split in SPLITS]
    return markdown_table(headers, rows, left=2) + f"\n\n{scale}: mean over generator seeds {', '.join(seeds) or '-'}"


SCORE_COLUMNS = [(task, split) for task in ("pooled", *SHIPPED_TASKS) for split in SPLITS]


def mean_score(scored: dict, seeds: list[str], profile: str, task: str, split: str) -> float | None:
    """The profile's score over the seeds (None unless every seed has it)."""
    values = [scored[seed][profile]["scores"][task][split] for seed in seeds if profile in scored[seed]]
    return sum(values) / len(values) if values and len(values) == len(seeds) else None


def changes_cell(profile: str) -> str:
    """The profile's changes to the shipped pipeline, as a table cell."""
    cells = []
    for task, learners in PROFILES[profile].items():
        for learner, settings in learners.items():
            change = "left out" if settings is DROP else " ".join(f"`{setting}`" for setting in settings)
            cells.append(f"{task} {learner} {change}")
    return "; ".join(cells) or "(shipped)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["scores", "full"], help="what to measure (nothing: the report only)")
    parser.add_argument("--seeds", default="0,1", help="generator seeds of the small competitions")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated profiles")
    parser.add_argument("--hours", type=float, default=3.0, help="the time budget of the whole pipeline")
    parser.add_argument("--scale", default="small", choices=["tiny", "small"], help="the scale of --part scores")
    parser.add_argument("--report", action="store_true", help="print the report only")
    parser.add_argument("--smoke", action="store_true", help="--scale tiny into /tmp/bench_smoke")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    profiles = [name for name in args.profiles.split(",") if name]
    unknown = sorted(set(profiles) - set(PROFILES))
    if unknown:
        parser.error(f"unknown profiles {unknown}; choose from {', '.join(PROFILES)}")
    if args.smoke:
        args.scale, args.out = "tiny", SMOKE_OUT
    if args.part == "scores" and not args.report:
        saved = load_result(args.out, "time_budget", args.scale) or {}
        for seed in (int(s) for s in args.seeds.split(",")):
            saved[str(seed)] = {**saved.get(str(seed), {}), **profile_scores(args.out, args.scale, seed, profiles)}
            save_result(args.out, "time_budget", args.scale, saved)
    if args.part == "full" and not args.report:
        full_stages(args.out, profiles, load_result(args.out, "time_budget", "full") or {})
    print(report(args.out, args.hours, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
