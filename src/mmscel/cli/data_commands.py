"""Commands on competition folders: synth, prepare, import-anndata, baseline, score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmscel.cli.common import DEFAULTS, Where, command, fmt, new_table, out


@command(uses=())
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
    table = new_table(
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
                *(fmt(truth[ref][name].get(split)) for ref in ("oracle", "reachable", "mean_profile")),
            )
    out.print(table)
    out.print(f"{truth['shapes']['evaluation_rows']:,} evaluation rows; written in {truth['wall_seconds']:.1f} s")


@command(uses=("data", "cache"))
def prepare(
    data_dir: Annotated[
        Path | None, typer.Argument(help="Competition folder (same as --data).", show_default=False)
    ] = None,
    where: Where = DEFAULTS,
    compress: Annotated[bool, typer.Option(help="Deflate the .npz files (smaller, slower).")] = False,
):
    """Convert the competition's HDF5 files into the sparse cache (streamed in row chunks)."""
    from mmscel.data.cache import prepare as run_prepare

    report = run_prepare(data_dir or where.data, where.cache, compress=compress)
    table = new_table(
        f"sparse cache in {report.cache}",
        ("matrix", "cells", "features", "non-zero", "status"),
        left=("matrix", "status"),
    )
    for stem, (rows, cols) in report.shapes.items():
        density = report.nnz[stem] / max(1, rows * cols)
        table.add_row(stem, f"{rows:,}", f"{cols:,}", f"{density:.1%}", report.status(stem))
    out.print(table)
    if report.cite_duplicates:
        out.print(
            f"[yellow]{report.cite_duplicates:,} CITEseq test rows duplicate train rows[/] "
            f"(the competition's known leak; pairs in {report.cache}/cite_test_duplicates.parquet)"
        )
    out.print(f"done in {report.seconds:.1f} s")


@command("import-anndata", uses=())
def import_anndata_command(
    task: Annotated[str, typer.Option(help="cite (RNA -> ADT) or multi (ATAC -> RNA).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the competition-layout dataset into.")] = Path(
        "data"
    ),
    inputs: Annotated[Path | None, typer.Option(help="AnnData .h5ad with the input modality.")] = None,
    targets: Annotated[Path | None, typer.Option(help="AnnData .h5ad with the target modality.")] = None,
    test_inputs: Annotated[Path | None, typer.Option(help="Separate test inputs .h5ad.")] = None,
    test_targets: Annotated[Path | None, typer.Option(help="Separate test targets .h5ad.")] = None,
    targets_obsm: Annotated[
        str | None,
        typer.Option(help="Read the targets from this obsm entry of the inputs (scvi-tools: protein_expression)."),
    ] = None,
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
    counts: Annotated[
        str,
        typer.Option(
            help="Raw counts: auto (apply the competition's processing to the modalities that hold them), "
            "normalise (require counts and process them) or keep (import the values as they are)."
        ),
    ] = "auto",
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize", help="Apply the competition's processing to raw counts (shorthand for --counts normalise)."
        ),
    ] = False,
    proteins: Annotated[
        str, typer.Option(help="Protein counts: clr (per cell) or dsb (without empty droplets, fitted on all cells).")
    ] = "clr",
    atac: Annotated[
        str, typer.Option(help="ATAC counts: tfidf (the competition's) or binary (peaks > 0 -> 1).")
    ] = "tfidf",
    raw: Annotated[bool, typer.Option(help="Also write *_raw.h5 from layers['counts'].")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
):
    """Build a competition-layout dataset from AnnData / MuData files (train/test by obs column or fraction)."""
    options = dict(locals())  # the options are import_anndata's keywords, passed through as they are
    options["test_values"] = test_values.split(",") if test_values else None
    from mmscel.data.anndata_import import import_anndata

    summary = import_anndata(**options)
    table = new_table(f"imported {task} dataset in {out_dir}", ("file", "shape"), left=("file",))
    for name, shape in summary["shapes"][task].items():
        table.add_row(name, " x ".join(f"{n:,}" for n in shape))
    out.print(table)
    out.print(
        f"{summary['train_cells']:,} train cells, {summary['test_cells']:,} test cells, "
        f"{summary['evaluation_rows']:,} evaluation rows"
    )
    out.print(summary["values"], highlight=False, soft_wrap=True)


@command()
def baseline(
    where: Where = DEFAULTS,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Submission file (default OOF/submissions/mean_profile.csv.gz).")
    ] = None,
):
    """Write the mean-profile submission (each target's training mean): the floor."""
    from mmscel.store import RunStore
    from mmscel.submission import cell_starts, evaluation_rows, mean_profile_values, write_submission

    path = out_path or RunStore(where.oof).submission_path("mean_profile")
    rows = evaluation_rows(where.data, where.cache)
    values = mean_profile_values(where.data, where.cache, rows)
    write_submission(path, values, cell_starts(rows), n_rows=rows.n_rows)
    out.print(f"wrote {path} ({len(values):,} rows)")


@command(uses=("data", "cache"))
def score(
    submission: Annotated[Path, typer.Argument(help="Submission CSV (row_id,target; .gz allowed).")],
    where: Where = DEFAULTS,
    name: Annotated[str | None, typer.Option(help="Name shown on the leaderboard.")] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(help="Also score per group of test cells of this metadata column (repeatable; needs prepare)."),
    ] = None,
    against: Annotated[
        Path | None, typer.Option(help="Another submission to score per group beside it, with the difference.")
    ] = None,
):
    """Score a submission on a dataset with truth/, per task and pooled, beside the floor and the oracle.

    Headroom is the share of the gap from the floor to the reachable reference that the score closes.
    With --by, each group of test cells (e.g. --by donor --by cell_type) is scored too, and with --against
    another submission beside it: where one submission gains or loses on the other.
    """
    from mmscel.scoring import leaderboard_rows, load_truth, read_solution_aligned, score_values

    truth, solution = load_truth(where.data)
    values = read_solution_aligned(submission, where.data)  # read once: the groups below score it too
    scores = score_values(values, solution, str(submission))
    rows = leaderboard_rows(name or Path(submission).name, scores, truth)
    table = new_table(
        f"local leaderboard ({where.data})",
        ("task", "split", "cells", "score", "mean profile", "oracle", "reachable", "headroom"),
        left=("task", "split"),
    )
    for row in rows:
        cells = scores.n_cells.get(row["task"], {}).get(row["split"])
        table.add_row(
            row["task"],
            row["split"],
            f"{cells:,}" if cells else "",
            fmt(row["score"]),
            fmt(row["mean_profile"]),
            fmt(row["oracle"]),
            fmt(row["reachable"]),
            "" if row["headroom"] is None else f"{round(row['headroom'], 2) + 0.0:.0%}",
        )
    out.print(table)
    if by:
        out.print(_group_table(submission, values, against, where, by))


def _group_table(submission: Path, values, against: Path | None, where: Where, by: list[str]):
    from mmscel.scoring import group_scores, read_solution_aligned

    groups = group_scores(values, where.data, where.cache, by)
    columns = ["task", "split", *by, "cells", "score"]
    if against is not None:
        other = group_scores(read_solution_aligned(against, where.data), where.data, where.cache, by)
        groups["against"] = other["score"].to_numpy()
        groups["difference"] = groups["score"] - groups["against"]
        columns += ["against", "difference"]
    title = f"per {' x '.join(by)}: {submission.name}" + ("" if against is None else f" against {against.name}")
    table = new_table(title, tuple(columns), left=("task", "split", *by))
    for values in groups.to_dict("records"):
        table.add_row(
            *(str(values[c]) for c in ("task", "split", *by)),
            f"{values['cells']:,}",
            *(fmt(values[c]) for c in columns[len(by) + 3 :]),
        )
    return table
