"""The competition's 1st-place pipeline beside mmscel's shipped pipeline, on the same synthetic competition.

    python bench/peers/first_place.py --peer-repo DIR [--scale tiny|small] [--seeds 0,1] [--only peer|mmscel]
                                      [--smoke] [--peer-debug] [--peer-python PY] [--keep-peer-work] [--out bench/out]

The peer is ``shu65/open-problems-multimodal``, the 1st-place solution, as a checkout the user supplies
(``--peer-repo``): its code is not part of mmscel and is never copied into it. For each generator seed, on
``OUT/<scale>`` (seed 0) or ``OUT/<scale>_seed<S>`` (made by ``mmscel synth --seed S`` when missing):

peer    the checkout is copied into a temporary folder, the changes listed below are applied to the copy, and its
        scripts run as measured subprocesses with the copy on ``PYTHONPATH`` (its setup.py pins scipy 1.8.1, so it
        is not pip-installed): ``make_compressed_dataset.py``, ``make_additional_files.py``,
        ``make_cite_input_mask.py``, then ``train_model.py --task_type cite|multi --n_splits 0`` at its defaults
        (one MLP per task, 40 epochs, seed 42, CPU). Its test predictions are written as a submission in
        ``evaluation_ids.csv`` order by ``mmscel.submission`` (not timed: the peer's own writer needs the full
        competition's row count).
mmscel  the shipped pipeline on a fresh cache and store: ``mmscel prepare``, ``mmscel level1`` of each
        ``configs/<task>/<learner>.yaml``, ``mmscel level2 configs/blend.yaml``, ``mmscel submit``.

Both submissions are scored with ``mmscel score`` (public, private, per task). Wall time, CPU time and mean load
are summed or averaged over each system's measured steps, peak RSS is their maximum: the larger of the step's
``ru_maxrss`` and the polled RSS of its process tree (the peer's data loader forks a worker). Writes section
``<scale>`` of ``OUT/first_place.json``: one row per system and seed, saved as soon as it is measured (a system
and seed already saved is kept, so that a run killed midway goes on with what it lacks; ``--redo`` measures
again), the peer's commit, the changes made to its copy, the inputs given to it, the machine.

Changes made to the peer's copy (also recorded in the JSON; a checkout where one no longer applies is refused):

1. ``script/train_model.py``: ``CrossVaridation.compute_score`` returns empty results at once when
   ``n_splits < 2``. Why: the script runs a diagnostic K-fold CV before its final fit whatever the options, and
   ``--n_splits 0`` makes scikit-learn's ``KFold`` fail. The fold models feed the test predictions only under
   ``--use_k_fold_models`` (off by default), so the final model is fitted exactly as before (from another state of
   the random generators) in a third of the time.

Inputs given to the peer (its code unchanged): ``make_cite_input_mask.py`` reads the HGNC gene table and the
Reactome pathway GMT, which cannot be had offline. It gets a header-only HGNC table (no aliases: a protein is paired
with an input gene of its own name, or through the script's own alias list) and a one-line GMT whose one gene is in
no dataset (no pathway-selected genes). The peer hard-codes the competition's donors, days and cell types;
``mmscel synth`` uses the same ids, which is checked before anything runs.

The peer needs torch (CPU), numpy, pandas, scipy, scikit-learn, tables, pyarrow, optuna and gitpython in
``--peer-python`` (default: this interpreter); missing modules are named before anything runs. ``--smoke``: tiny
scale, the first seed and ``--peer-debug`` (the peer's own ``--debug``: 10 epochs, 128 units; a check that the path
runs, not its model), into /tmp/bench_smoke unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    PYTHON,
    add_out_argument,
    load_result,
    markdown_table,
    mmscel_command,
    publish,
    run_command,
    run_measured,
    save_result,
    seeded_competition,
    shipped_pipeline,
    submission_scores,
)

NAME = "first_place"
SMOKE_OUT = Path("/tmp/bench_smoke")
SYSTEMS = ("peer", "mmscel")
PEER_MODULES = ("torch", "numpy", "pandas", "scipy", "sklearn", "tables", "pyarrow", "optuna", "git")
# The ids ss_opm/utility/get_group_id.py and metadata_utility.py hard-code.
PEER_IDS = {
    "donor": {"13176", "27678", "31800", "32606"},
    "day": {"2", "3", "4", "7", "10"},
    "technology": {"citeseq", "multiome"},
    "cell_type": {"HSC", "EryP", "NeuP", "MasP", "MkP", "BP", "MoP", "hidden"},
}
PEER_CHANGES = (
    {
        "file": "script/train_model.py",
        "anchor": "        groups = None\n        kf = KFold(n_splits=n_splits, shuffle=True, random_state=1)\n",
        "insert_before": "        if n_splits < 2:  # mmscel bench: no diagnostic CV\n"
        "            return pd.DataFrame(), [], []\n",
        "what": "CrossVaridation.compute_score returns empty results (no CV) when n_splits < 2",
        "why": "the diagnostic K-fold CV runs before the final fit whatever the options and --n_splits 0 makes "
        "KFold fail; its models feed the test predictions only under --use_k_fold_models (off by default), so "
        "the final fit is unchanged (bar the random state it starts from) and takes a third of the time",
    },
)
HGNC_HEADER = "symbol\talias_symbol\tprev_symbol\n"
REACTOME_LINE = "no pathway\tR-HSA-0\tno pathway\tNO_SUCH_GENE_MMSCEL_BENCH\n"
PEER_INPUTS = {
    "hgnc_complete_set": "a header-only table (symbol, alias_symbol, prev_symbol): no aliases beyond the script's own",
    "reactome_pathways": "one line whose one gene is in no dataset: no pathway-selected input genes",
}
# Run in the peer's interpreter: its predictions are pickles of arrays; they leave as .npy with the cell ids.
EXPORT = """
import pickle, sys, numpy as np
work, out = sys.argv[1:]
for task, pickled in (("cite", "citeseq_pred.pickle"), ("multi", "multimodal_pred.pickle")):
    with open(f"{work}/result_{task}/{pickled}", "rb") as handle:
        np.save(f"{out}/{task}.npy", np.asarray(pickle.load(handle), dtype=np.float32))
    ids = np.load(f"{work}/test_{task}_inputs_idxcol.npz", allow_pickle=True)["index"]
    np.save(f"{out}/{task}_cells.npy", ids.astype(str))
"""


# ----------------------------------------------------------------------------- data


def competition(scale: str, seed: int, out: Path) -> Path:
    """The synthetic competition of ``scale`` and ``seed`` (:func:`common.seeded_competition`), checked for the peer."""
    data = seeded_competition(scale, seed, out)
    check_peer_ids(data)
    return data


def check_peer_ids(data: Path) -> None:
    """Refuse, in one line, a competition whose metadata uses ids the peer does not know."""
    with open(data / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column, known in PEER_IDS.items():
        unknown = {row[column] for row in rows} - known
        if unknown:
            raise SystemExit(f"{data}/metadata.csv: {column} {sorted(unknown)} unknown to the peer ({sorted(known)})")


# ----------------------------------------------------------------------------- the peer


def check_peer_python(python: str) -> None:
    """Refuse, in one line, an interpreter that lacks a module the peer imports."""
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if not importlib.util.find_spec(m)))"
    missing = run_command([python, "-c", probe, *PEER_MODULES]).split()
    if missing:
        names = " ".join("gitpython" if m == "git" else "scikit-learn" if m == "sklearn" else m for m in missing)
        raise SystemExit(f"the peer needs {names} in {python}: {python} -m pip install {names}")


def check_peer_repo(repo: Path) -> None:
    """Refuse, in one line, a folder that is not a checkout of the peer."""
    if not (repo / "script" / "train_model.py").is_file() or not (repo / "ss_opm").is_dir():
        raise SystemExit(f"{repo} is not a checkout of shu65/open-problems-multimodal (no script/train_model.py)")


def peer_commit(repo: Path) -> str | None:
    """The checkout's commit, when it is a git repository."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def copy_peer(repo: Path, into: Path) -> Path:
    """Copy the checkout (without ``.git``) into ``into/repo`` and apply :data:`PEER_CHANGES` there.

    Parameters
    ----------
    repo
        The user's checkout of the peer; never modified.
    into
        A temporary folder.

    Returns
    -------
    Path
        The patched copy.
    """
    copy = into / "repo"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    for change in PEER_CHANGES:
        path = copy / change["file"]
        text = path.read_text()
        if text.count(change["anchor"]) != 1:
            raise SystemExit(f"{repo}/{change['file']}: the code this harness changes is not there once; other commit?")
        path.write_text(text.replace(change["anchor"], change["insert_before"] + change["anchor"]))
    return copy


def peer_inputs(into: Path) -> tuple[Path, Path]:
    """The offline stand-ins for the HGNC table and the Reactome GMT (see :data:`PEER_INPUTS`)."""
    hgnc, reactome = into / "hgnc_complete_set.txt", into / "ReactomePathways.gmt"
    hgnc.write_text(HGNC_HEADER)
    reactome.write_text(REACTOME_LINE)
    return hgnc, reactome


def peer_steps(data: Path, work: Path, debug: bool) -> list[tuple[str, list]]:
    """The peer's commands in order, each as (step name, arguments after the interpreter)."""
    hgnc, reactome = peer_inputs(work.parent)
    train = ["script/train_model.py", "--data_dir", work, "--n_splits", "0", *(["--debug"] if debug else [])]
    return [
        ("compress", ["script/make_compressed_dataset.py", "--data_dir", data, "--output_data_dir", work]),
        ("additional_files", ["script/make_additional_files.py", "--data_dir", work]),
        ("cite_input_mask", ["script/make_cite_input_mask.py", "--data_dir", work]
         + ["--hgnc_complete_set_path", hgnc, "--reactome_pathways_path", reactome]),
        ("train_cite", train + ["--task_type", "cite", "--out_dir", work / "result_cite"]),
        ("train_multi", train + ["--task_type", "multi", "--out_dir", work / "result_multi"]),
    ]  # fmt: skip


def run_peer(args: argparse.Namespace, data: Path, run_dir: Path, logs: Path) -> dict:
    """The peer on ``data``: its measured steps, and its submission in ``run_dir/peer``."""
    out = run_dir / "peer"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    temporary = Path(tempfile.mkdtemp(prefix="peer-", dir=out))
    try:
        copy = copy_peer(args.peer_repo, temporary)
        work = temporary / "work"
        env = ["env", f"PYTHONPATH={copy}", args.peer_python]
        steps = []
        for name, command in peer_steps(data, work, args.peer_debug):
            print(f"  peer {name} ...", flush=True)
            steps.append({"step": name, **run_measured(env + command, log=logs / f"peer_{name}.log", cwd=copy)})
        run_command([args.peer_python, "-c", EXPORT, work, out], log=logs / "peer_export.log")
    finally:
        if not args.keep_peer_work:
            shutil.rmtree(temporary, ignore_errors=True)
    submission = out / "submission.csv.gz"
    step = bench_step("submission", data, out / "cite.npy", out / "multi.npy", out / "cite_cells.npy")
    run_command(step + [out / "multi_cells.npy", submission], log=logs / "peer_submission.log")
    return {"steps": steps, "submission": str(submission), "debug": args.peer_debug}


# ----------------------------------------------------------------------------- mmscel


def run_mmscel(data: Path, run_dir: Path, logs: Path) -> dict:
    """mmscel's shipped pipeline on ``data`` with a fresh cache and store: its measured steps and submission."""
    out = run_dir / "mmscel"
    shutil.rmtree(out, ignore_errors=True)
    where = ["--data", data, "--cache", out / "cache"]
    stored = where + ["--oof", out / "oof"]
    submission = out / "submission.csv.gz"
    commands = [("prepare", ["prepare", *where]), *shipped_pipeline(stored, submission)]
    steps = []
    for name, command in commands:
        print(f"  mmscel {name} ...", flush=True)
        steps.append({"step": name, **run_measured(mmscel_command() + command, log=logs / f"mmscel_{name}.log")})
    return {"steps": steps, "submission": str(submission)}


# ----------------------------------------------------------------------------- scoring and rows


def score(data: Path, submission: str, system: str, logs: Path) -> dict:
    """``mmscel score`` (its table in the log), and the same scores as numbers: task -> split -> score."""
    run_command(
        mmscel_command() + ["score", submission, "--data", data, "--name", system], log=logs / f"{system}_score.log"
    )
    return submission_scores(data, Path(submission))


def summary(system: str, seed: int, run: dict, scores: dict) -> dict:
    """One row of the table: the scores, and the measured steps summed (peak RSS: their maximum)."""
    steps = run["steps"]
    wall = sum(s["wall_s"] for s in steps)
    loads = [(s["mean_loadavg"], s["wall_s"]) for s in steps if s["mean_loadavg"] is not None]
    return {
        "system": system,
        "seed": seed,
        "scores": scores,
        "wall_s": wall,
        "cpu_s": sum(s["cpu_s"] for s in steps),
        "peak_rss_mib": max(max(s["peak_rss_mib"], s["polled_peak_rss_mib"]) for s in steps),
        "mean_loadavg": sum(load * w for load, w in loads) / sum(w for _, w in loads) if loads else None,
        **run,
    }


def table(rows: list[dict]) -> str:
    """The side-by-side table: one row per system and seed, then each system's mean when there are several seeds."""
    rows = sorted(rows, key=lambda r: (SYSTEMS.index(r["system"]), r["seed"]))
    lines = [table_line(label(r), str(r["seed"]), [r]) for r in rows]
    for system in SYSTEMS:
        mine = [r for r in rows if r["system"] == system]
        if len(mine) > 1:
            lines.append(table_line(f"**{label(mine[0])}**", "mean", mine))
    headers = ["system", "seed", "public", "private", "CITEseq public", "CITEseq private"]
    headers += ["Multiome public", "Multiome private", "wall min", "CPU min", "peak RSS GiB", "load"]
    return markdown_table(headers, lines, left=2)


def label(row: dict) -> str:
    """The system's name in the table; the peer's debug model is marked."""
    return f"{row['system']} (--debug)" if row.get("debug") else row["system"]


def table_line(name: str, seed: str, rows: list[dict]) -> list:
    def mean(get) -> float:
        return sum(get(r) for r in rows) / len(rows)

    scores = [
        f"{mean(lambda r, t=task, s=split: r['scores'][t][s]):.4f}"
        for task, split in [("pooled", "public"), ("pooled", "private"), ("cite", "public"), ("cite", "private")]
        + [("multi", "public"), ("multi", "private")]
    ]
    measured = [mean(lambda r: r["wall_s"]) / 60, mean(lambda r: r["cpu_s"]) / 60]
    peak = max(r["peak_rss_mib"] for r in rows) / 1024
    load = [r["mean_loadavg"] for r in rows if r["mean_loadavg"] is not None]
    return [name, seed, *scores, *measured, peak, f"{sum(load) / len(load):.1f}" if load else None]


# ----------------------------------------------------------------------------- steps in their own process


def bench_step(what: str, *args) -> list:
    """The command of ``first_place.py step WHAT ARGS`` (run with mmscel's interpreter)."""
    return [PYTHON, Path(__file__).resolve(), "step", what, *args]


def step(argv: list[str]) -> int:
    """``step submission DATA CITE MULTI CITE_CELLS MULTI_CELLS FILE``.

    Run in a subprocess so that the driver never imports numpy or mmscel: Linux charges the forking parent's
    resident pages to the peak RSS of the steps it measures.
    """
    what, *rest = argv
    if what != "submission":
        raise SystemExit(f"unknown step {what!r}")
    write_peer_submission(*map(Path, rest))
    return 0


def write_peer_submission(data: Path, cite: Path, multi: Path, cite_cells: Path, multi_cells: Path, file: Path) -> None:
    """Write the peer's test predictions (test cells x targets per task) as a validated submission.

    Parameters
    ----------
    data
        The prepared competition.
    cite, multi
        ``.npy`` predictions, one row per test cell of ``cite_cells`` / ``multi_cells`` (cell ids, ``.npy``).
    file
        The submission to write.
    """
    import numpy as np

    from mmscel.data.load import cache_dir_for, cached_idxcol
    from mmscel.submission import cell_starts, evaluation_rows, submission_values, write_submission

    cache = cache_dir_for(data, None)
    predictions = {}
    for task, values, cells in (("cite", cite, cite_cells), ("multi", multi, multi_cells)):
        order = {cell: i for i, cell in enumerate(np.load(cells))}
        ours = cached_idxcol(cache, f"test_{task}_inputs")[0]
        predictions[task] = (np.load(values)[[order[cell] for cell in ours]], None)
    rows = evaluation_rows(data)
    write_submission(file, submission_values(data, None, predictions, rows), cell_starts(rows))


# ----------------------------------------------------------------------------- main


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-repo", type=Path, help="a checkout of shu65/open-problems-multimodal (never modified)")
    parser.add_argument("--scale", default="small", choices=["tiny", "small"])
    parser.add_argument("--seeds", default="0,1", help="generator seeds, comma-separated")
    parser.add_argument("--only", choices=SYSTEMS, help="run one system (the other's saved rows are kept)")
    parser.add_argument("--smoke", action="store_true", help="tiny, first seed, --peer-debug, /tmp/bench_smoke")
    parser.add_argument("--peer-debug", action="store_true", help="the peer's own --debug: 10 epochs, 128 units")
    parser.add_argument("--peer-python", default=PYTHON, help="the interpreter that runs the peer (default: this one)")
    parser.add_argument("--redo", action="store_true", help="measure again the systems and seeds already saved")
    parser.add_argument("--keep-peer-work", action="store_true", help="keep the peer's copy and working files")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.smoke:
        args.scale, args.seeds, args.peer_debug = "tiny", args.seeds[:1], True
        args.out = SMOKE_OUT if "--out" not in argv else args.out
    args.systems = [args.only] if args.only else list(SYSTEMS)
    if "peer" in args.systems:
        if args.peer_repo is None:
            parser.error("--peer-repo DIR is needed (a checkout of shu65/open-problems-multimodal)")
        args.peer_repo = args.peer_repo.resolve()
        check_peer_repo(args.peer_repo)
        check_peer_python(args.peer_python)
    args.out = args.out.resolve()
    return args


def run_seed(args: argparse.Namespace, seed: int, done: set, save) -> None:
    """Every chosen system on the competition of ``seed`` not in ``done``; ``save`` gets each row as it ends."""
    data = competition(args.scale, seed, args.out)
    run_dir = args.out / NAME / f"{args.scale}_seed{seed}"
    logs = args.out / "logs" / NAME / f"{args.scale}_seed{seed}"
    for system in args.systems:
        if (system, seed) in done:
            print(f"{system}, seed {seed}: measured, kept (--redo measures it again)", flush=True)
            continue
        print(f"{system} on {data} ...", flush=True)
        started = time.perf_counter()
        run = run_peer(args, data, run_dir, logs) if system == "peer" else run_mmscel(data, run_dir, logs)
        run["driver_wall_s"] = time.perf_counter() - started
        row = summary(system, seed, run, score(data, run["submission"], system, logs))
        save(row)
        print(table([row]), flush=True)


def peer_record(args: argparse.Namespace) -> dict:
    """What the JSON says about the peer: where from, which commit, how it was run and changed."""
    return {
        "repo": str(args.peer_repo),
        "commit": peer_commit(args.peer_repo),
        "python": args.peer_python,
        "debug": args.peer_debug,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "changes": [{k: c[k] for k in ("file", "what", "why", "insert_before")} for c in PEER_CHANGES],
        "inputs": PEER_INPUTS,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["step"]:
        return step(argv[1:])
    args = arguments(argv)
    section = args.scale
    previous = load_result(args.out, NAME, section) or {}
    rows = list(previous.get("rows", []))
    peer = peer_record(args) if "peer" in args.systems else previous.get("peer")
    done = set() if args.redo else {(r["system"], r["seed"]) for r in rows}

    def save(row: dict) -> None:
        """Keep ``row`` in place of an earlier one of its system and seed, and write the section now."""
        rows[:] = [r for r in rows if (r["system"], r["seed"]) != (row["system"], row["seed"])] + [row]
        save_result(args.out, NAME, section, {"scale": args.scale, "rows": rows, "peer": peer})

    for seed in args.seeds:
        run_seed(args, seed, done, save)
    return publish(args.out, NAME, section, {"scale": args.scale, "rows": rows, "peer": peer}, table(rows))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
