"""The ``mmscel`` command line: thin typer commands over the package's stages.

Conventions: every command that reads a competition folder takes ``--data``
(default ``data/``); the prepared cache lives in ``DATA/.cache`` unless
``--cache`` says otherwise; run outputs go under ``--oof`` (default ``oof/``).
Exit codes: 0 success, 2 bad input or usage (one line, no traceback),
1 internal error.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from mmscel.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mmscel: a competition stack for multimodal single-cell prediction (Kaggle open-problems-multimodal).",
)
out = Console()
err = Console(stderr=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Competition folder.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Prepared cache folder (default DATA/.cache).")]
OofOpt = Annotated[Path, typer.Option("--oof", help="Root of everything runs produce.")]


def cli_errors(command):
    """Report bad input as one line with exit code 2, anything else as an internal error (1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MMSCEL_DEBUG"):
                traceback.print_exc()
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@cli_errors
def synth(
    scale: Annotated[str, typer.Option(help="tiny, small, medium or full.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed (the output is deterministic for a seed).")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the competition into.")] = Path("data"),
    raw: Annotated[bool, typer.Option("--raw/--no-raw", help="Also write the raw-count *_raw.h5 files.")] = False,
    extras: Annotated[
        bool, typer.Option("--extras/--no-extras", help="Write the extra day-2 donor-27678 CITEseq file.")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
):
    """Generate a synthetic competition in Kaggle's layout, with its hidden truth under OUT/truth."""
    from mmscel.data.synth.generate import generate

    truth = generate(out_dir, scale, seed, extras=extras, raw=raw, overwrite=overwrite)
    table = _table(
        f"synthetic competition '{scale}' (seed {seed}) in {out_dir}",
        ("task", "split", "cells", "oracle", "reachable", "mean profile"),
        left=("task",),
    )
    counts = truth["n_test_cells"]
    for task, key in (("cite", "cite"), ("multi", "multi_scored"), ("pooled", None)):
        for split in ("public", "private"):
            name = "leaderboard" if key is None else task
            cells = "" if key is None else str(counts[key][split])
            table.add_row(
                task,
                split,
                cells,
                *(_fmt(truth[ref][name].get(split)) for ref in ("oracle", "reachable", "mean_profile")),
            )
    out.print(table)
    out.print(f"{truth['shapes']['evaluation_rows']:,} evaluation rows; written in {truth['wall_seconds']:.1f} s")


@app.command()
@cli_errors
def prepare(
    data_dir: Annotated[
        Path | None, typer.Argument(help="Competition folder (same as --data).", show_default=False)
    ] = None,
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    compress: Annotated[bool, typer.Option(help="Deflate the .npz files (smaller, slower).")] = False,
):
    """Convert the competition's HDF5 files into the sparse cache (streamed in row chunks)."""
    from mmscel.data.cache import prepare as run_prepare

    report = run_prepare(data_dir or data, cache, compress=compress)
    table = _table(
        f"sparse cache in {report.cache}",
        ("matrix", "cells", "features", "non-zero", "status"),
        left=("matrix", "status"),
    )
    for stem, (rows, cols) in report.shapes.items():
        density = report.nnz[stem] / max(1, rows * cols)
        table.add_row(stem, f"{rows:,}", f"{cols:,}", f"{density:.1%}", "built" if stem in report.built else "reused")
    out.print(table)
    if report.cite_duplicates:
        out.print(
            f"[yellow]{report.cite_duplicates:,} CITEseq test rows duplicate train rows[/] "
            f"(the competition's known leak; pairs in {report.cache}/cite_test_duplicates.parquet)"
        )
    out.print(f"done in {report.seconds:.1f} s")


@app.command("import-anndata")
@cli_errors
def import_anndata_command(
    task: Annotated[str, typer.Option(help="cite (RNA -> ADT) or multi (ATAC -> RNA).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the competition-layout dataset into.")] = Path(
        "data"
    ),
    inputs: Annotated[Path | None, typer.Option(help="AnnData .h5ad with the input modality.")] = None,
    targets: Annotated[Path | None, typer.Option(help="AnnData .h5ad with the target modality.")] = None,
    test_inputs: Annotated[Path | None, typer.Option(help="Separate test inputs .h5ad.")] = None,
    test_targets: Annotated[Path | None, typer.Option(help="Separate test targets .h5ad.")] = None,
    mudata: Annotated[Path | None, typer.Option(help="MuData .h5mu holding both modalities.")] = None,
    input_mod: Annotated[str | None, typer.Option(help="MuData modality of the inputs.")] = None,
    target_mod: Annotated[str | None, typer.Option(help="MuData modality of the targets.")] = None,
    split_by: Annotated[str | None, typer.Option(help="obs column that decides the test cells.")] = None,
    test_values: Annotated[
        str | None, typer.Option(help="Comma-separated values of --split-by that go to test.")
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Random test fraction when no column split is given.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the random split and of the scored Multiome entries.")] = 0,
    layer: Annotated[str | None, typer.Option(help="Read values from this layer instead of .X.")] = None,
    raw: Annotated[bool, typer.Option(help="Also write *_raw.h5 from layers['counts'].")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
):
    """Build a competition-layout dataset from AnnData / MuData files (train/test by obs column or fraction)."""
    from mmscel.data.anndata_import import import_anndata

    summary = import_anndata(
        out_dir,
        task,
        inputs=inputs,
        targets=targets,
        mudata=mudata,
        input_mod=input_mod,
        target_mod=target_mod,
        test_inputs=test_inputs,
        test_targets=test_targets,
        split_by=split_by,
        test_values=test_values.split(",") if test_values else None,
        test_fraction=test_fraction,
        seed=seed,
        layer=layer,
        raw=raw,
        overwrite=overwrite,
    )
    table = _table(f"imported {task} dataset in {out_dir}", ("file", "shape"), left=("file",))
    for name, shape in summary["shapes"][task].items():
        table.add_row(name, " x ".join(f"{n:,}" for n in shape))
    out.print(table)
    out.print(
        f"{summary['train_cells']:,} train cells, {summary['test_cells']:,} test cells, "
        f"{summary['evaluation_rows']:,} evaluation rows"
    )


@app.command()
@cli_errors
def baseline(
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    oof: OofOpt = Path("oof"),
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Submission file (default OOF/submissions/mean_profile.csv.gz).")
    ] = None,
):
    """Write the mean-profile submission (each target's training mean): the floor."""
    from mmscel.store import RunStore
    from mmscel.submission import cell_starts, evaluation_rows, mean_profile_values, write_submission

    path = out_path or RunStore(oof).submission_path("mean_profile")
    rows = evaluation_rows(data, cache)
    values = mean_profile_values(data, cache, rows)
    write_submission(path, values, cell_starts(rows), n_rows=rows.n_rows)
    out.print(f"wrote {path} ({len(values):,} rows)")


@app.command()
@cli_errors
def score(
    submission: Annotated[Path, typer.Argument(help="Submission CSV (row_id,target; .gz allowed).")],
    data: DataOpt = Path("data"),
    name: Annotated[str | None, typer.Option(help="Name shown on the leaderboard.")] = None,
):
    """Score a submission on a dataset with truth/, per task and pooled, beside the floor and the oracle.

    Headroom is the share of the gap from the floor to the reachable reference that the score closes.
    """
    from mmscel.scoring import leaderboard_rows, score_submission

    scores, truth = score_submission(submission, data)
    rows = leaderboard_rows(name or Path(submission).name, scores, truth)
    table = _table(
        f"local leaderboard ({data})",
        ("task", "split", "cells", "score", "mean profile", "oracle", "reachable", "headroom"),
        left=("task", "split"),
    )
    for row in rows:
        cells = scores.n_cells.get(row["task"], {}).get(row["split"])
        table.add_row(
            row["task"],
            row["split"],
            f"{cells:,}" if cells else "",
            _fmt(row["score"]),
            _fmt(row["mean_profile"]),
            _fmt(row["oracle"]),
            _fmt(row["reachable"]),
            "" if row["headroom"] is None else f"{round(row['headroom'], 2) + 0.0:.0%}",
        )
    out.print(table)


@app.command()
@cli_errors
def level1(
    configs: Annotated[
        list[Path], typer.Argument(help="Run configs, e.g. configs/cite/ridge.yaml (several: in turn).")
    ],
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    oof: OofOpt = Path("oof"),
    overwrite: Annotated[bool, typer.Option(help="Replace a run of the same name made with another config.")] = False,
):
    """Fit base learners on the shared folds; write OOF and test predictions under OOF/<task>/<run>/."""
    from mmscel.config import load_run_config
    from mmscel.level1 import run_level1

    for config in [load_run_config(path) for path in configs]:  # every config is checked before the first fit
        _print_run(run_level1(config, data, cache, oof, overwrite=overwrite))


def _print_run(result) -> None:
    run = result.record
    title = f"{run.task}/{run.name} ({run.learner}, folds: {run.fold_scheme})" + (" [reused]" if result.reused else "")
    columns = ("fold", "cells", "score", "mean profile", "best iter.", "seconds")
    table = _table(title, columns, left=("fold",))
    for name, fold in run.folds.items():
        best = fold.get("best_iterations")
        best = "" if not best else (str(best[0]) if len(best) == 1 else f"{int(np.median(best))} (median)")
        cells = f"{fold['n_valid']:,}"
        table.add_row(name, cells, _fmt(fold["score"]), _fmt(fold.get("mean_profile")), best, f"{fold['seconds']:.1f}")
    cells = f"{run.validated_rows:,}"
    table.add_row("CV", cells, _fmt(run.cv), _fmt(run.cv_mean_profile), "", f"{run.wall_seconds:.1f}")
    out.print(table)
    shapes = run.manifest["shapes"]
    out.print(f"wrote {run.path}/oof.npy {tuple(shapes['oof'])} and test.npy {tuple(shapes['test'])}")


@app.command()
@cli_errors
def runs(
    oof: OofOpt = Path("oof"),
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
        for run in RunStore(oof).runs()
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for task in sorted({r["task"] for r in rows}):
        columns = ("run", "learner", "folds", "CV", "floor", "last day", "seconds")
        table = _table(f"{task} runs in {oof}", columns, left=("run", "learner", "folds"))
        for r in (r for r in rows if r["task"] == task):
            scores = (_fmt(r["cv"]), _fmt(r["cv_mean_profile"]), _fmt(r["last_day"]))
            table.add_row(r["run"], r["learner"], r["folds"], *scores, f"{r['wall_seconds']:.1f}")
        out.print(table)
    if not rows:
        out.print(f"no finished runs under {oof}")


@app.command()
@cli_errors
def level2(
    config: Annotated[Path, typer.Argument(help="Blend config, e.g. configs/blend.yaml.")],
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    oof: OofOpt = Path("oof"),
):
    """Blend level-1 runs per task (Optuna, greedy, SLSQP or stacking) with an honest nested score."""
    from mmscel.blend.run import run_level2

    blend = run_level2(config, data, cache, oof)
    columns = ("task", "runs and weights", "in-sample", "nested", "last day", "best single")
    table = _table(f"blend '{blend.name}' ({blend.method})", columns, left=("task", "runs and weights"))
    for task, info in blend.tasks.items():
        weights = ", ".join(f"{run} {w:.2f}" for run, w in zip(info.runs, info.weights) if w > 0.005)
        flag = " [red](nested < best single)[/]" if info.flag_nested_below_best_single else ""
        best = f"{info.best_single['run']} {info.best_single['score']:.4f}"
        table.add_row(task, weights, _fmt(info.in_sample), _fmt(info.nested) + flag, _fmt(info.last_day), best)
    pooled = blend.pooled
    table.add_row(
        "pooled", "", _fmt(pooled.get("in_sample")), _fmt(pooled.get("nested")), _fmt(pooled.get("last_day")), ""
    )
    out.print(table)


@app.command()
@cli_errors
def submit(
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    oof: OofOpt = Path("oof"),
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

    record = run_submit(data, cache, oof, out_path, blend=blend, runs=run)
    out.print(f"wrote {record['file']} ({record['rows']:,} rows, validated)")
    if record["filled_with_mean_profile"]:
        out.print(
            f"[yellow]no predictions for {', '.join(record['filled_with_mean_profile'])}: "
            "filled with the mean profile[/]"
        )
    out.print(record["kaggle"], soft_wrap=True, highlight=False)


@app.command()
@cli_errors
def leaderboard(
    data: DataOpt = Path("data"),
    cache: CacheOpt = None,
    oof: OofOpt = Path("oof"),
):
    """Every level-1 run and blend: CV (nested for blends), last day, public, private, beside floor and oracle."""
    from mmscel.scoring import board

    rows, truth = board(data, cache, oof)
    if not rows:
        out.print(f"no level-1 runs or blends under {oof} for the tasks of {data}")
    for task in sorted({row["task"] for row in rows}):
        table = _table(
            f"{task}: local leaderboard ({data})",
            ("name", "kind", "CV", "last day", "public", "private"),
            left=("name", "kind"),
        )
        for row in sorted((r for r in rows if r["task"] == task), key=lambda r: -(r.get("private") or 0)):
            table.add_row(
                row["name"],
                row["kind"],
                _fmt(row["cv"]),
                _fmt(row["last_day"]),
                _fmt(row.get("public")),
                _fmt(row.get("private")),
            )
        references = (
            ("mean profile", "floor", "mean_profile"),
            ("oracle", "noise-free E(y|state)", "oracle"),
            ("reachable", "E(y|state), chromatin averaged", "reachable"),
        )
        for name, kind, key in references:
            scores = (truth.get(key) or {}).get(task)
            if scores:
                cv = "" if scores.get("train") is None else _fmt(scores["train"])  # the floor has no train figure
                table.add_row(name, kind, cv, "", _fmt(scores.get("public")), _fmt(scores.get("private")))
        out.print(table)


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    """A rich table with the ``left`` columns left-aligned and the others (numbers) right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


def main() -> None:
    """Entry point that keeps exit codes: 0 ok, 1 internal error, 2 bad input or usage.

    The process-wide settings live here, at the edge, never in the library:
    OpenMP threads wait passively (spinning threads steal the core another
    thread needs on a busy 2-core machine: a LightGBM fold went from 39 s to
    several minutes; passive waiting costs nothing measurable when idle), and
    Optuna reports warnings only (one line per trial would bury the tables).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any OpenMP library loads
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    app(prog_name="mmscel")


if __name__ == "__main__":
    sys.exit(main())
