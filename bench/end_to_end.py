"""The whole competition end to end, one measured stage at a time, restartable stage by stage.

    python bench/end_to_end.py [--scale full] [--out bench/out] [--redo STAGE,...] [--only STAGE,...] [--report]

On ``OUT/<scale>`` (made by ``mmscel synth --scale SCALE --seed 0`` in the first stage) with the shipped
configs as they are: ``synth``, ``prepare``, the feature build of each task (``features_<task>``, the
set every shipped config of the task shares), ``mmscel level1`` of every ``configs/<task>/<learner>.yaml``
with all its folds (``level1_<task>_<learner>``), ``mmscel level2 configs/blend.yaml``, ``mmscel submit``;
then the submission is scored (public, private, per task; not timed). Each stage runs in its own
process (:func:`common.run_measured`): wall and CPU time, peak RSS, mean load.

Every stage's result is saved in section ``<scale>`` of ``OUT/end_to_end.json`` as soon as it ends, and
a stage already recorded is not run again. ``--redo`` names recorded stages to measure again from scratch:
their record and killed attempts are dropped, and a level-1 stage's run is removed from the store (its
fold checkpoints would make a second run a mere assembly). Name the stages that read its output
(``level2``, ``submit``) as well, or they keep their earlier result. A stage killed in the
middle is run again from the start of its process; mmscel's own resumability (the cache, the fold
checkpoints) makes it continue where it stopped. While a stage runs, its figures so far are kept in
``OUT/logs/end_to_end_<scale>_<stage>.progress.json``; the next attempt adds that file to the stage's
``interrupted`` attempts, and the report counts every attempt (wall and CPU summed, the highest RSS).
The report sums the stages and checks them against the targets of a 2-core, 24 GB machine: the whole
pipeline within ``--hours`` (3) and every stage within ``--stage-gib`` (16) of peak RSS. ``--smoke``
runs on the tiny scale into /tmp/bench_smoke.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    SHIPPED_TASKS,
    add_out_argument,
    bench_script,
    collect_interrupted,
    load_result,
    markdown_table,
    measured_step,
    mmscel_command,
    run_command,
    run_measured,
    save_result,
    shipped_pipeline,
    stage_totals,
    submission_scores,
)

SMOKE_OUT = Path("/tmp/bench_smoke")
MIB_PER_GIB = 1024
SPLITS = ("public", "private")


class Pipeline:
    """The stages of one scale, where they read and write, and what has been recorded of them."""

    def __init__(self, scale: str, out: Path):
        self.scale, self.out = scale, out
        self.data = out / scale
        self.oof = out / f"oof_e2e_{scale}"
        self.submission = self.oof / "submissions" / "end_to_end.csv.gz"
        self.section = scale
        self.saved = load_result(out, "end_to_end", self.section) or {"stages": {}}

    def stages(self) -> list[tuple[str, list]]:
        """Every stage: its name and command, in order."""
        data, oof = ["--data", self.data], ["--data", self.data, "--oof", self.oof]
        synth = ["synth", "--scale", self.scale, "--seed", 0, "--out", self.data, "--overwrite"]
        stages = [("synth", mmscel_command() + synth), ("prepare", mmscel_command() + ["prepare", *data])]
        for task in SHIPPED_TASKS:
            config = ROOT / "configs" / task / "ridge.yaml"  # the feature set every shipped config of the task shares
            build = bench_script("fullscale_step.py") + ["features", config, self.data, self.oof]
            stages.append((f"features_{task}", build))
        stages += [(name, mmscel_command() + args) for name, args in shipped_pipeline(oof, self.submission)]
        return stages

    def run(self, redo: set[str], only: set[str]) -> None:
        """Run every stage not yet recorded (and those in ``redo``; only those in ``only`` when given)."""
        for name, command in self.stages():
            if only and name not in only:
                continue
            if name in self.saved["stages"]:
                if name not in redo:
                    print(f"{name}: recorded, skipped", flush=True)
                    continue
                self.forget(name)
            progress = self.out / "logs" / f"end_to_end_{self.scale}_{name}.progress.json"
            interrupted = self.saved.setdefault("interrupted", {}).setdefault(name, [])
            collect_interrupted(progress, interrupted)
            self.save()
            print(f"{name} ...", flush=True)
            log = self.out / "logs" / f"end_to_end_{self.scale}_{name}.log"
            step = measured_step if name.startswith("features") else run_measured
            result = step(command, log=log, progress=progress)
            self.saved["stages"][name] = {**result, "interrupted": interrupted, "commit": source_commit()}
            self.save()
            print(f"{name}: {result['wall_s']:,.1f} s, peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)
        if self.submission.exists() and (not only or "submit" in only):
            self.saved["scores"] = submission_scores(self.data, self.submission)
            self.save()

    def forget(self, name: str) -> None:
        """Drop a recorded stage, its killed attempts and, for a level-1 stage, its run: measured again from scratch.

        Done only while the stage is recorded, so that a redo killed midway goes on from its checkpoints.
        """
        del self.saved["stages"][name]
        self.saved.get("interrupted", {}).pop(name, None)
        if name.startswith("level1_"):
            task, learner = name.removeprefix("level1_").split("_", 1)
            shutil.rmtree(self.oof / task / f"{task}_{learner}", ignore_errors=True)
        self.save()

    def save(self) -> None:
        save_result(self.out, "end_to_end", self.section, self.saved)


def source_commit() -> str:
    """The commit of the mmscel tree that ran the stage (stages may run in several sittings)."""
    return run_command(["git", "rev-parse", "--short", "HEAD"]).strip()


def report(saved: dict, hours: float, stage_gib: float) -> str:
    """The stages, their sum and the scores as markdown, each stage checked against the targets."""
    rows, totals = [], {name: stage_totals(stage) for name, stage in saved["stages"].items()}
    for name, total in totals.items():
        over = total["peak_rss_mib"] > stage_gib * MIB_PER_GIB
        load = total["mean_loadavg"]
        rows.append(
            [
                name,
                total["attempts"],
                round(total["wall_s"], 1),
                round(total["cpu_s"], 1),
                round(total["peak_rss_mib"]),
                "**over**" if over else "ok",
                round(load, 1) if load is not None else None,
            ]
        )
    pipeline = [total for name, total in totals.items() if name != "synth"]  # the data a user downloads
    wall = sum(t["wall_s"] for t in pipeline)
    peak = max((t["peak_rss_mib"] for t in pipeline), default=0.0)
    cpu = sum(t["cpu_s"] for t in pipeline)
    rows.append(["**pipeline (without synth)**", None, round(wall, 1), round(cpu, 1), round(peak), None, None])
    headers = ["stage", "attempts", "wall s", "CPU s", "peak RSS MiB", f"≤ {stage_gib:g} GiB", "mean load"]
    lines = [markdown_table(headers, rows)]
    verdict = "within" if wall <= hours * 3600 else "over"
    lines.append(f"\npipeline wall {wall / 3600:.2f} h ({verdict} {hours:g} h), peak RSS {peak / MIB_PER_GIB:.1f} GiB")
    scores = saved.get("scores")
    if scores:
        tasks = [task for task in scores if task != "pooled"]
        score_rows = [[task, *(four(scores[task].get(split)) for split in SPLITS)] for task in [*tasks, "pooled"]]
        lines.append("\n" + markdown_table(["task", "public", "private"], score_rows))
    return "\n".join(lines)


def four(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "medium", "full"])
    parser.add_argument("--redo", default="", help="comma-separated stages to run again although recorded")
    parser.add_argument("--only", default="", help="comma-separated stages to run, the others left as they are")
    parser.add_argument("--hours", type=float, default=3.0, help="target wall time of the pipeline")
    parser.add_argument("--stage-gib", type=float, default=16.0, help="target peak RSS of every stage")
    parser.add_argument("--report", action="store_true", help="print the recorded stages; run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny scale into /tmp/bench_smoke")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.scale, args.out = "tiny", SMOKE_OUT
    pipeline = Pipeline(args.scale, args.out)
    if not args.report:
        pipeline.run({name for name in args.redo.split(",") if name}, {name for name in args.only.split(",") if name})
    print(report(pipeline.saved, args.hours, args.stage_gib))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
