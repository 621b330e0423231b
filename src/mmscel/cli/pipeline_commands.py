"""Commands of the pipeline: level1, runs, level2, submit, leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from mmscel.cli.common import (
    DEFAULTS,
    MlflowOption,
    MlflowUriOption,
    SetOption,
    Where,
    command,
    fmt,
    new_table,
    out,
)


@command()
def level1(
    configs: Annotated[
        list[Path], typer.Argument(help="Run configs, e.g. configs/cite/ridge.yaml (several: in turn).")
    ],
    where: Where = DEFAULTS,
    overwrite: Annotated[bool, typer.Option(help="Replace a run of the same name made with another config.")] = False,
    overrides: SetOption = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Fit the folds on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786 (default: $MMSCEL_DASK, "
            "else the configs' compute.dask; none: here). Its workers must see DATA, CACHE and OOF at the same paths.",
        ),
    ] = None,
    mlflow: MlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
):
    """Fit base learners on the shared folds; write OOF and test predictions under OOF/<task>/<run>/."""
    from mmscel import tracking
    from mmscel.config import load_run_config
    from mmscel.distributed import dask_address, run_level1_dask
    from mmscel.level1 import run_level1

    checked = [load_run_config(path, overrides or ()) for path in configs]  # all checked before the first fit
    address = dask_address(dask, checked)
    with tracking.enabled(mlflow, mlflow_uri):
        if address is not None:
            for result in run_level1_dask(checked, address, where.data, where.cache, where.oof, overwrite=overwrite):
                _print_run(result)
            return
        for config in checked:
            _print_run(run_level1(config, where.data, where.cache, where.oof, overwrite=overwrite))


def _print_run(result) -> None:
    run = result.record
    title = f"{run.task}/{run.name} ({run.learner}, folds: {run.fold_scheme})" + (" (reused)" if result.reused else "")
    columns = ("fold", "cells", "score", "mean profile", "best iter.", "seconds")
    table = new_table(title, columns, left=("fold",))
    for name, fold in run.folds.items():
        best = fold.get("best_iterations")
        best = "" if not best else (str(best[0]) if len(best) == 1 else f"{int(np.median(best))} (median)")
        cells = f"{fold['n_valid']:,}"
        table.add_row(name, cells, fmt(fold["score"]), fmt(fold.get("mean_profile")), best, f"{fold['seconds']:.1f}")
    cells = f"{run.validated_rows:,}"
    table.add_row("CV", cells, fmt(run.cv), fmt(run.cv_mean_profile), "", f"{run.wall_seconds:.1f}")
    out.print(table)
    shapes = run.manifest["shapes"]
    out.print(f"wrote {run.path}/oof.npy {tuple(shapes['oof'])} and test.npy {tuple(shapes['test'])}")


@command(uses=("oof",))
def runs(
    where: Where = DEFAULTS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
):
    """List finished level-1 runs per task, best CV first."""
    import json

    from mmscel.store import RunStore

    rows = [
        {
            "task": run.task,
            "run": run.name,
            "learner": run.learner,
            "folds": run.fold_scheme,
            "cv": run.cv,
            "cv_mean_profile": run.cv_mean_profile,
            "last_day": run.last_day,
            "wall_seconds": run.wall_seconds,
        }
        for run in RunStore(where.oof).runs()
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for task in sorted({r["task"] for r in rows}):
        columns = ("run", "learner", "folds", "CV", "floor", "last day", "seconds")
        table = new_table(f"{task} runs in {where.oof}", columns, left=("run", "learner", "folds"))
        for r in (r for r in rows if r["task"] == task):
            scores = (fmt(r["cv"]), fmt(r["cv_mean_profile"]), fmt(r["last_day"]))
            table.add_row(r["run"], r["learner"], r["folds"], *scores, f"{r['wall_seconds']:.1f}")
        out.print(table)
    if not rows:
        out.print(f"no finished runs under {where.oof}")


@command()
def level2(
    config: Annotated[Path, typer.Argument(help="Blend config, e.g. configs/blend.yaml.")],
    where: Where = DEFAULTS,
    overrides: SetOption = None,
    mlflow: MlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
):
    """Blend level-1 runs per task (Optuna, greedy, SLSQP or stacking) with an honest nested score."""
    from mmscel import tracking
    from mmscel.blend.run import load_blend_config, run_level2

    blend_config = load_blend_config(config, overrides or ())
    with tracking.enabled(mlflow, mlflow_uri):
        blend = run_level2(blend_config, where.data, where.cache, where.oof)
    columns = ("task", "runs and weights", "in-sample", "nested", "last day", "best single")
    table = new_table(f"blend '{blend.name}' ({blend.method})", columns, left=("task", "runs and weights"))
    for task, info in blend.tasks.items():
        weights = ", ".join(f"{run} {w:.2f}" for run, w in zip(info.runs, info.weights) if w > 0.005)
        flag = " [red](nested < best single)[/]" if info.flag_nested_below_best_single else ""
        best = f"{info.best_single['run']} {info.best_single['score']:.4f}"
        table.add_row(task, weights, fmt(info.in_sample), fmt(info.nested) + flag, fmt(info.last_day), best)
    pooled = blend.pooled
    table.add_row(
        "pooled", "", fmt(pooled.get("in_sample")), fmt(pooled.get("nested")), fmt(pooled.get("last_day")), ""
    )
    out.print(table)
    for task, info in blend.tasks.items():
        if info.cis:
            cis = info.cis
            scores = ""
            if "gain" in cis:
                scores = f", held-out folds {fmt(cis['nested_base'])} -> {fmt(cis['nested_corrected'])}"
            if "last_day_base" in cis:
                scores += f", last day {fmt(cis['last_day_base'])} -> {fmt(cis['last_day_corrected'])}"
            verdict = "applied" if cis["applied"] else f"not applied: {cis['why']}"
            out.print(f"{task}: cis correction ({cis['peaks_per_gene']} peaks a gene){scores}: {verdict}")


@command()
def submit(
    where: Where = DEFAULTS,
    blend: Annotated[str | None, typer.Option(help="Blend to submit (default: the latest).")] = None,
    run: Annotated[
        list[str] | None, typer.Option(help="Submit single level-1 runs instead, as TASK/RUN (repeatable).")
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Submission file (default OOF/submissions/<name>.csv.gz).")
    ] = None,
):
    """Write a validated Kaggle submission (row_id,target) and print the kaggle command that uploads it."""
    from mmscel.blend.submit import submit as run_submit

    record = run_submit(where.data, where.cache, where.oof, out_path, blend=blend, runs=run)
    out.print(f"wrote {record['file']} ({record['rows']:,} rows, validated)")
    if record["filled_with_mean_profile"]:
        out.print(
            f"[yellow]no predictions for {', '.join(record['filled_with_mean_profile'])}: "
            "filled with the mean profile[/]"
        )
    out.print(record["kaggle"], soft_wrap=True, highlight=False)


@command()
def leaderboard(
    where: Where = DEFAULTS,
):
    """Every level-1 run and blend: CV (nested for blends), last day, and public and private where there is truth.

    Synthetic and imported datasets carry their test truth, so the local
    leaderboard adds the public and private scores beside the floor, the
    oracle and the reachable reference; on the real Kaggle files it lists
    the validation scores only.
    """
    from mmscel.api import leaderboard as board
    from mmscel.errors import InputError
    from mmscel.scoring import load_truth

    frame = board(where.data, where.cache, where.oof)
    try:
        truth, _ = load_truth(where.data)
    except InputError:
        truth = {}
    if frame.empty:
        out.print(f"no level-1 runs or blends under {where.oof} for the tasks of {where.data}")
    title = "local leaderboard" if truth else "validation"
    for task, rows in frame.groupby("task", sort=True):
        columns = ("name", "kind", "CV", "last day", "public", "private")
        table = new_table(f"{task}: {title} ({where.data})", columns, left=("name", "kind"))
        for row in rows.itertuples():
            table.add_row(row.name, row.kind, *(fmt(v) for v in (row.cv, row.last_day, row.public, row.private)))
        for name, kind, scores in _references(truth, task):
            cv = "" if scores.get("train") is None else fmt(scores["train"])  # the floor has no train figure
            table.add_row(name, kind, cv, "", fmt(scores.get("public")), fmt(scores.get("private")))
        out.print(table)


def _references(truth: dict, task: str):
    """(name, kind, scores) of the floor, the oracle and the reachable reference a dataset's truth records."""
    references = (
        ("mean profile", "floor", "mean_profile"),
        ("oracle", "noise-free E(y|state)", "oracle"),
        ("reachable", "E(y|state), chromatin averaged", "reachable"),
    )
    for name, kind, key in references:
        scores = (truth.get(key) or {}).get(task)
        if scores:
            yield name, kind, scores
