"""Tuning: ``mmscel tune`` sessions on the small synthetic competition, and what their tuned configs score.

    python bench/tune_bench.py [--section mlp,lgbm,workers,objective] [--trials 40] [--out bench/out]
    python bench/tune_bench.py --report [--section ...]      # the tables of OUT/tune_bench.json again

The defaults are the issue's full settings (about 7 h on a quiet machine); BENCHMARKS.md (Tuning)
gives the budgeted commands that were run.

mlp        ``mmscel tune configs/<mlp-task>/mlp.yaml`` (default CITEseq) once per pruner (``--pruners``,
           default wilcoxon, median, none), each a fresh study of ``--trials`` trials (or ``--mlp-timeout``
           seconds). Per session: wall, CPU, peak RSS, trials per hour, complete and pruned trials, the best
           CV and the best CV reached within the common budget (the timeout, else the quickest session's
           wall). Each session's best trial (``--keep 1 --out-config`` into ``OUT/tune/configs/``) and the
           shipped config are then fitted by ``mmscel level1`` into a store of this section and scored by
           the local leaderboard: CV, last day, public, private, fit wall time.
lgbm       the same for ``configs/<lgbm-task>/lgbm.yaml`` (default Multiome, whose trials are cheaper),
           with ``--lgbm-timeout`` seconds per session when given (equal wall budget).
workers    trials per hour of one study worked on by two ``mmscel tune`` processes against one, for
           ``--workers-timeout`` seconds each: one process with the shipped config (n_jobs 2), one process
           and two processes (same ``--study``) with a copy of it at ``n_jobs: 1``; pruner none. Reports the
           distinct parameter sets too (concurrent workers may propose the same ones).
objective  ``--objective cv`` against ``--objective blend`` (when this mmscel has it) on the MLP config, each
           in a copy of the level-1 store ``OUT/oof_<scale>`` (bench/level1_quality.py; its missing runs are
           fitted): the tuned run fitted by ``mmscel level1`` beside the shipped runs, then
           ``mmscel level2 configs/blend.yaml``, ``mmscel submit`` and the leaderboard: the blend's nested
           CV, last day, public and private beside the shipped blend (the same commands on a copy without a
           tuned run).

Every study, store and config goes under ``OUT/tune/`` (the section's folder is wiped when the section
starts, so every study is fresh), logs under ``OUT/logs/tune_*``; nothing is written to configs/ or
oof/. Long mlp and lgbm sections can be spread over several invocations: ``--stop-after S`` starts no
trial after S seconds (the running one ends, the invocation is measured) and ``--resume`` continues
the section's studies up to ``--trials`` each; the section is saved when every session is complete,
its wall and CPU times the sums over the invocations. ``--smoke`` runs on the tiny scale with few
trials and short timeouts into /tmp/bench_smoke. Writes ``OUT/tune_bench.json`` (one section each;
``--label L`` saves them as ``SECTION:L``, keeping an earlier measurement) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PYTHON,
    ROOT,
    add_out_argument,
    combined_measures,
    last_json_line,
    markdown_table,
    mmscel_command,
    prepared,
    run_command,
    run_measured,
    save_result,
    synthetic_competition,
    write_json,
)

SECTIONS = ("mlp", "lgbm", "workers", "objective")
PRUNERS = ("wilcoxon", "median", "none")
OBJECTIVES = ("cv", "blend")
LEARNERS = ("ridge", "lgbm", "xgb", "catboost", "mlp")
SMOKE_OUT = Path("/tmp/bench_smoke")
MEASURED = ("wall_s", "cpu_s", "peak_rss_mib", "polled_peak_rss_mib", "mean_loadavg")
STORE_PARTS = ("features", "folds")  # caches a fresh store may share with the level-1 store


# ----------------------------------------------------------------------------- stores and configs


class Bench:
    """Where a run of this script reads and writes: the data, the level-1 store, ``OUT/tune/``, logs."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.data = prepared(synthetic_competition(args.scale, args.out), args.out)
        self.level1_store = args.out / f"oof_{args.scale}"
        self.root = args.out / "tune"
        self.configs = self.root / "configs"
        self.logs = args.out / "logs"

        stop_after = getattr(args, "stop_after", None)  # other benches build a Bench from their own arguments
        self.deadline = time.time() + stop_after if stop_after else None

    def section_folder(self, section: str) -> Path:
        """``OUT/tune/<section>``, emptied unless ``--resume``: every study of a section starts afresh."""
        folder = self.root / section
        if not getattr(self.args, "resume", False):
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.configs.mkdir(parents=True, exist_ok=True)
        return folder

    def store(self, folder: Path, runs: bool = False) -> Path:
        """A store in ``folder`` with the level-1 store's feature and fold caches (and its runs when ``runs``)."""
        folder.mkdir(parents=True, exist_ok=True)
        parts = [*STORE_PARTS, "cite", "multi"] if runs else STORE_PARTS
        for part in parts:
            if (self.level1_store / part).exists() and not (folder / part).exists():
                shutil.copytree(self.level1_store / part, folder / part)
        return folder

    def seconds_left(self) -> float | None:
        """Seconds until ``--stop-after`` runs out (None: no limit)."""
        return None if self.deadline is None else self.deadline - time.time()

    def mmscel(self, *args, store: Path, log: str) -> str:
        """``mmscel ARGS --data DATA --oof STORE``, unmeasured; its output."""
        command = mmscel_command() + [*args, "--data", self.data, "--oof", store]
        return run_command(command, log=self.logs / f"tune_{log}.log")

    def measured(self, *args, store: Path, log: str) -> dict:
        """``mmscel ARGS --data DATA --oof STORE`` measured (wall, CPU, peak RSS, load), with its start time."""
        command = mmscel_command() + [*args, "--data", self.data, "--oof", store]
        started = time.time()
        result = run_measured(command, log=self.logs / f"tune_{log}.log")
        return {"started": started, "command": " ".join(map(str, result["cmd"])), **pick(result, MEASURED)}


def pick(mapping: dict, keys) -> dict:
    """The entries of ``mapping`` under ``keys`` (those present)."""
    return {key: mapping[key] for key in keys if key in mapping}


def shipped_config(task: str, learner: str) -> Path:
    """``configs/<task>/<learner>.yaml``."""
    return ROOT / "configs" / task / f"{learner}.yaml"


def default_run_name(task: str, learner: str) -> str:
    """The run ``mmscel level1`` names a shipped config's (``<task>_<learner>``)."""
    return f"{task}_{learner}"


def rename_run(config: Path, name: str) -> Path:
    """Give the tuned config ``config`` the run name ``name`` (several tuned runs then share one store)."""
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^name: .*$", f"name: {name}", text))
    return config


def config_with(source: Path, path: Path, **keys) -> Path:
    """A copy of the run config ``source`` at ``path`` with top-level ``keys`` set."""
    import yaml

    raw = yaml.safe_load(source.read_text())
    path.write_text(f"# {source.relative_to(ROOT)} with {keys}\n" + yaml.safe_dump({**raw, **keys}, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- steps run in a subprocess


def step(argv: list[str]) -> int:
    """``tune_bench.py step study JOURNAL NAME`` or ``step leaderboard DATA OOF``: one JSON line.

    Run in a subprocess so that this driver never imports optuna, pandas or numpy: Linux charges the
    forking parent's resident pages to the peak RSS of the steps it measures.
    """
    what, *rest = argv
    result = {"study": study_trials, "leaderboard": leaderboard_rows}[what](*rest)
    print(json.dumps(result, default=float))
    return 0


def study_trials(journal: str, name: str) -> dict:
    """Every trial of study ``name`` in ``journal``: state, value, CV, last day, times, worker, params."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(journal)))
    rows = []
    for t in study.get_trials(deepcopy=False):
        start, end = t.datetime_start, t.datetime_complete
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "cv": t.user_attrs.get("cv"),
                "last_day": t.user_attrs.get("last_day"),
                "fold_scores": t.user_attrs.get("fold_scores", {}),
                "pruned_at_fold": t.user_attrs.get("pruned_at_fold"),
                "worker_pid": (t.user_attrs.get("worker") or {}).get("pid"),
                "start": start.timestamp() if start else None,
                "complete": end.timestamp() if end else None,
                "params": t.params,
            }
        )
    return {"trials": rows}


def leaderboard_rows(data: str, oof: str) -> dict:
    """The local leaderboard of a store as records (task, name, kind, cv, last_day, public, private)."""
    from mmscel.api import leaderboard

    frame = leaderboard(data, None, oof)
    return {"rows": json.loads(frame.to_json(orient="records"))}


def source_state() -> dict:
    """The commit of the working tree and its files that differ from it (others may be editing src/)."""
    commit = run_command(["git", "rev-parse", "--short", "HEAD"]).strip()
    changed = run_command(["git", "status", "--porcelain", "--", "src"]).splitlines()
    return {"commit": commit, "changed_in_src": [line[3:] for line in changed]}


def run_step(bench: Bench, *args, log: str) -> dict:
    """Run a step of this script in a subprocess; the JSON it printed."""
    output = run_command([PYTHON, str(Path(__file__).resolve()), "step", *args], log=bench.logs / f"tune_{log}.log")
    return last_json_line(output)


# ----------------------------------------------------------------------------- sessions


def tune_session(bench: Bench, config: Path, store: Path, study: str, **options) -> dict:
    """One measured ``mmscel tune`` session of a fresh study; its trials and summary.

    Parameters
    ----------
    bench
        Where things go.
    config
        The run config to tune.
    store
        The store (the study goes to ``STORE/tune/<study>/``).
    study
        The study's name.
    **options
        ``trials``, ``timeout``, ``objective``, ``pruner``, ``out_config`` (None: no tuned config kept).

    Returns
    -------
    dict
        The measurement, the trials, and :func:`summary` of them.
    """
    if getattr(bench.args, "resume", False) or bench.deadline is not None:
        return resumed_session(bench, config, store, study, **options)
    measure = bench.measured(*tune_command(config, study, **options), store=store, log=study)
    return {**collect_study(bench, store, study, measure), "options": {k: str(v) for k, v in options.items()}}


def resumed_session(bench: Bench, config: Path, store: Path, study: str, **options) -> dict | None:
    """A session of ``options["trials"]`` trials spread over invocations of this script; None while unfinished.

    Each invocation continues the study with the trials it still lacks and stops starting trials when
    ``--stop-after`` runs out (``mmscel tune --timeout``), so that it ends measured rather than killed.
    The invocations are recorded in ``<section>/<study>.invocations.json``: the session's wall and CPU
    time are their sums, and an invocation that was killed (started, never measured) is reported.
    """
    if options["timeout"]:
        raise SystemExit("--resume and --stop-after need sessions of a number of trials, not of a timeout")
    record = store.parent / f"{study}.invocations.json"
    invocations = json.loads(record.read_text()) if record.exists() else []
    missing = options["trials"] - finished_trials(bench, store, study)
    left = bench.seconds_left()
    if missing > 0 and (left is None or left > 60):
        invocations.append({"started": time.time()})
        write_json(record, invocations)
        run = {**options, "trials": missing, "timeout": None if left is None else int(left)}
        invocations[-1] = bench.measured(*tune_command(config, study, **run), store=store, log=study)
        write_json(record, invocations)
        missing = options["trials"] - finished_trials(bench, store, study)
    if missing > 0:
        print(f"{study}: {missing} trials to go; run the same command again with --resume", flush=True)
        return None
    session = collect_study(bench, store, study, combined(invocations))
    return {**session, "invocations": invocations, "options": {k: str(v) for k, v in options.items()}}


def finished_trials(bench: Bench, store: Path, study: str) -> int:
    """Complete and pruned trials of ``study`` so far (0 before it exists)."""
    journal = store / "tune" / study / "study.journal"
    if not journal.exists():
        return 0
    trials = run_step(bench, "study", journal, study, log=f"{study}_trials")["trials"]
    return sum(t["state"] in ("COMPLETE", "PRUNED") for t in trials)


def combined(invocations: list[dict]) -> dict:
    """One measure of a session's invocations (:func:`common.combined_measures`), with its start time."""
    total = combined_measures(invocations)
    return {
        "started": invocations[0]["started"],
        **pick(total, ("wall_s", "cpu_s", "peak_rss_mib", "mean_loadavg")),
        "invocations": total["attempts"],
        "killed_invocations": total["unmeasured_attempts"],
    }


def tune_command(config: Path, study: str, trials, timeout, objective, pruner, out_config) -> list:
    """The arguments of ``mmscel tune`` (``--data`` and ``--oof`` are added by :meth:`Bench.measured`)."""
    command = ["tune", config, "--trials", trials, "--study", study, "--objective", objective, "--pruner", pruner]
    if timeout:
        command += ["--timeout", timeout]
    if out_config:
        command += ["--keep", 1, "--out-config", out_config]
    return command


def collect_study(bench: Bench, store: Path, study: str, measure: dict) -> dict:
    """A finished study's trials (read back from its journal) and their summary beside the measurement."""
    journal = store / "tune" / study / "study.journal"
    trials = run_step(bench, "study", journal, study, log=f"{study}_trials")["trials"]
    return {"study": study, "measure": measure, "summary": summary(trials, measure), "trials": trials}


def summary(trials: list[dict], measure: dict) -> dict:
    """Trial counts, trials per hour of session wall, mean trial seconds, the best trial."""
    finished = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    seconds = [t["complete"] - t["start"] for t in finished if t["start"] and t["complete"]]
    best = max(complete, key=lambda t: t["value"], default=None)
    return {
        "finished": len(finished),
        "complete": len(complete),
        "pruned": len(finished) - len(complete),
        "failed": sum(t["state"] == "FAIL" for t in trials),
        "distinct_params": len({json.dumps(t["params"], sort_keys=True) for t in finished}),
        "trials_per_hour": len(finished) / measure["wall_s"] * 3600,
        "mean_trial_s": sum(seconds) / len(seconds) if seconds else None,
        "trial_s_total": sum(seconds),
        "best": pick(best, ("number", "value", "cv", "last_day", "params")) if best else None,
    }


def best_within(session: dict, budget: float) -> float | None:
    """The best objective value among the trials that completed within ``budget`` seconds of session time."""
    values = [
        t["value"]
        for t in session["trials"]
        if t["state"] == "COMPLETE" and t["complete"] and session_seconds(session, t["complete"]) <= budget
    ]
    return max(values, default=None)


def session_seconds(session: dict, moment: float) -> float:
    """Seconds of session time at the clock time ``moment``: gaps between invocations do not count."""
    spans = [m for m in session.get("invocations", [session["measure"]]) if "wall_s" in m]
    elapsed = 0.0
    for span in sorted(spans, key=lambda m: m["started"]):
        if moment <= span["started"] + span["wall_s"]:
            return elapsed + max(moment - span["started"], 0.0)
        elapsed += span["wall_s"]
    return elapsed


# ----------------------------------------------------------------------------- scoring tuned configs


def fit_and_score(bench: Bench, store: Path, configs: dict[str, Path], log: str) -> dict[str, dict]:
    """``mmscel level1`` each config into ``store`` (measured), then the leaderboard's row of each run.

    Parameters
    ----------
    bench
        Where things go.
    store
        The store.
    configs
        Label -> run config; a config equal to one already fitted (apart from its name) is not fitted again.
    log
        Prefix of the logs.

    Returns
    -------
    dict
        Label -> the run's name, measurement, manifest wall time and leaderboard scores.
    """
    fitted, runs = {}, {}
    for label, config in configs.items():
        key = config_key(config)
        if key in fitted:
            runs[label] = {**runs[fitted[key]], "same_config_as": fitted[key]}
            continue
        measure = bench.measured("level1", config, store=store, log=f"{log}_level1_{label}")
        runs[label] = {"run": run_name_of(config), "config": str(config), "level1": measure}
        fitted[key] = label
    board = leaderboard(bench, store, log=f"{log}_leaderboard")
    for run in runs.values():
        run["scores"] = board.get(run["run"])
        run["fit_wall_s"] = manifest_wall(store, run)
    return runs


def config_key(config: Path) -> str:
    """A run config's content without its name and comments (equal keys fit the same run)."""
    import yaml

    raw = yaml.safe_load(config.read_text())
    raw.pop("name", None)
    return json.dumps(raw, sort_keys=True)


def run_name_of(config: Path) -> str:
    """The run a config writes: its ``name``, else ``<task>_<stem>`` for a shipped config."""
    import yaml

    raw = yaml.safe_load(config.read_text())
    return raw.get("name") or default_run_name(raw["task"], config.stem)


def manifest_wall(store: Path, run: dict) -> float | None:
    """The run's own wall seconds (its manifest), folds, holdout and test predictions."""
    for task in ("cite", "multi"):
        path = store / task / run["run"] / "manifest.json"
        if path.exists():
            return json.loads(path.read_text()).get("wall_seconds")
    return None


def leaderboard(bench: Bench, store: Path, log: str) -> dict[str, dict]:
    """Run name (or blend name per task, as ``<task>/<name>``) -> its leaderboard row."""
    bench.mmscel("leaderboard", store=store, log=log)  # the table as the CLI prints it, in the log
    rows = run_step(bench, "leaderboard", bench.data, store, log=f"{log}_json")["rows"]
    board = {row["name"]: row for row in rows if not row["kind"].startswith("blend")}
    board.update({f"{row['task']}/{row['name']}": row for row in rows if row["kind"].startswith("blend")})
    return board


# ----------------------------------------------------------------------------- sections


def section_pruning(bench: Bench, learner: str, task: str, timeout: float | None) -> dict:
    """One fresh study per pruner on the shipped config; each tuned config and the shipped one fitted and scored."""
    args = bench.args
    folder = bench.section_folder(learner)
    store = bench.store(folder / "store")
    config = shipped_config(task, learner)
    sessions, tuned = {}, {"shipped": config}
    for pruner in args.pruners:
        study = f"{task}_{learner}_{pruner}"
        out_config = bench.configs / f"{study}.yaml"
        options = {"trials": args.trials, "timeout": timeout, "objective": "cv", "pruner": pruner}
        sessions[pruner] = tune_session(bench, config, store, study, **options, out_config=out_config)
        if sessions[pruner] is None:
            continue
        if out_config.exists():
            tuned[pruner] = rename_run(out_config, f"{default_run_name(task, learner)}_tuned_{pruner}")
        print(session_line(pruner, sessions[pruner]), flush=True)
    if None in sessions.values():
        return None
    budget = timeout or min(s["measure"]["wall_s"] for s in sessions.values())
    for session in sessions.values():
        session["summary"]["best_within_budget"] = best_within(session, budget)
    runs = fit_and_score(bench, store, tuned, log=f"{learner}_{task}")
    return {
        "task": task,
        "learner": learner,
        "timeout": timeout,
        "budget_s": budget,
        "sessions": sessions,
        "runs": runs,
    }


def session_line(label: str, session: dict) -> str:
    s, m = session["summary"], session["measure"]
    best = f"{s['best']['value']:.4f}" if s["best"] else "-"
    return f"{label}: {s['finished']} trials ({s['pruned']} pruned) in {m['wall_s']:.0f} s, best {best}"


def workers_config(bench: Bench, task: str, learner: str) -> Path:
    """The shipped config at ``n_jobs: 1`` (one thread per worker), in ``OUT/tune/configs/``."""
    path = bench.configs / f"{task}_{learner}_n_jobs1.yaml"
    return config_with(shipped_config(task, learner), path, n_jobs=1)


def section_workers(bench: Bench) -> dict:
    """One process (n_jobs 2; n_jobs 1) against two processes on one study (n_jobs 1), equal ``--timeout``."""
    args = bench.args
    folder = bench.section_folder("workers")
    task, learner, timeout = args.workers_task, args.workers_learner, args.workers_timeout
    one_thread = workers_config(bench, task, learner)
    arms = {
        "1 worker, n_jobs 2": (shipped_config(task, learner), 1),
        "1 worker, n_jobs 1": (one_thread, 1),
        "2 workers, n_jobs 1": (one_thread, 2),
    }
    sessions = {}
    for label, (config, workers) in arms.items():
        store = bench.store(folder / f"store_{workers}x{config.stem}")
        sessions[label] = parallel_session(bench, config, store, f"workers_{workers}_{config.stem}", workers, timeout)
        print(session_line(label, sessions[label]), flush=True)
    return {"task": task, "learner": learner, "timeout": timeout, "sessions": sessions}


def parallel_session(bench: Bench, config: Path, store: Path, study: str, workers: int, timeout: float) -> dict:
    """``workers`` ``mmscel tune`` processes started together on one study; measured each, summarised together."""
    out_config = store / f"{study}.tuned.yaml"  # never beside a shipped config
    options = {"trials": 10_000, "timeout": timeout, "objective": "cv", "pruner": "none", "out_config": out_config}
    command = tune_command(config, study, **options)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(bench.measured, *command, store=store, log=f"{study}_w{k}") for k in range(workers)]
        measures = [future.result() for future in futures]
    started = min(m["started"] for m in measures)
    ended = max(m["started"] + m["wall_s"] for m in measures)
    measure = {"started": started, "wall_s": ended - started, "cpu_s": sum(m["cpu_s"] for m in measures)}
    measure["mean_loadavg"] = sum(m["mean_loadavg"] or 0 for m in measures) / workers
    session = collect_study(bench, store, study, measure)
    session["workers"] = measures
    session["trials_per_worker"] = trials_per_worker(session["trials"])
    return session


def trials_per_worker(trials: list[dict]) -> dict[str, int]:
    """Finished trials per worker process id."""
    counts: dict[str, int] = {}
    for t in trials:
        if t["state"] in ("COMPLETE", "PRUNED"):
            counts[str(t["worker_pid"])] = counts.get(str(t["worker_pid"]), 0) + 1
    return counts


def available_objectives(bench: Bench) -> tuple[str, ...]:
    """The ``--objective`` values this mmscel accepts."""
    probe = "import json; from mmscel.tune.objective import OBJECTIVES; print(json.dumps({'o': list(OBJECTIVES)}))"
    return tuple(last_json_line(run_command([PYTHON, "-c", probe], log=bench.logs / "tune_objectives.log"))["o"])


def ensure_level1_runs(bench: Bench) -> None:
    """Fit the shipped configs whose runs the level-1 store lacks (all of them after bench/level1_quality.py)."""
    for task in ("cite", "multi"):
        for learner in bench.args.base_learners:
            if not (bench.level1_store / task / default_run_name(task, learner) / "manifest.json").exists():
                config = shipped_config(task, learner)
                bench.mmscel("level1", config, store=bench.level1_store, log=f"base_{task}_{learner}")


def blend_and_score(bench: Bench, store: Path, label: str) -> dict:
    """``mmscel level2 configs/blend.yaml``, ``mmscel submit`` and the leaderboard of ``store``."""
    level2 = bench.measured("level2", ROOT / "configs" / "blend.yaml", store=store, log=f"objective_{label}_level2")
    bench.mmscel("submit", "--blend", "blend", store=store, log=f"objective_{label}_submit")
    board = leaderboard(bench, store, log=f"objective_{label}_leaderboard")
    manifest = json.loads((store / "blend" / "blend" / "manifest.json").read_text())
    weights = {task: dict(zip(info["runs"], info["weights"])) for task, info in manifest["tasks"].items()}
    return {"level2": level2, "board": board, "weights": weights}


def section_objective(bench: Bench) -> dict:
    """The shipped blend, then per objective: tune, fit the tuned run beside the shipped runs, blend, score."""
    args = bench.args
    ensure_level1_runs(bench)
    folder = bench.section_folder("objective")
    task, learner = args.mlp_task, "mlp"
    available = available_objectives(bench)
    result = {"task": task, "learner": learner, "available": list(available), "arms": {}}
    shipped = bench.store(folder / "shipped", runs=True)
    result["shipped"] = blend_and_score(bench, shipped, "shipped")
    for objective in [o for o in args.objectives if o in available]:
        store = bench.store(folder / objective, runs=True)
        study = f"{task}_{learner}_objective_{objective}"
        out_config = bench.configs / f"{study}.yaml"
        options = {"trials": args.objective_trials, "timeout": None, "objective": objective, "pruner": "wilcoxon"}
        session = tune_session(bench, shipped_config(task, learner), store, study, **options, out_config=out_config)
        print(session_line(objective, session), flush=True)
        rename_run(out_config, f"{default_run_name(task, learner)}_tuned_{objective}")
        session["runs"] = fit_and_score(bench, store, {"tuned": out_config}, log=f"objective_{objective}")
        session.update(blend_and_score(bench, store, objective))
        result["arms"][objective] = session
    return result


# ----------------------------------------------------------------------------- reports


def four(value) -> str | None:
    """A score with four decimals (None stays empty)."""
    return None if value is None else f"{value:.4f}"


def minutes(seconds) -> str | None:
    """Seconds as minutes with one decimal."""
    return None if seconds is None else f"{seconds / 60:.1f}"


def pruning_report(result: dict) -> str:
    """The table of a pruning section: each session beside the shipped config."""
    headers = ["config", "trials (pruned)", "session wall min", "CPU min", "mean load", "trials/h", "CPU s/trial"]
    headers += ["best CV (trial)"]
    headers += [f"best CV by {minutes(result['budget_s'])} min", "tuned CV", "last day", "public", "private"]
    headers += ["level1 fit s", "peak RSS MiB"]
    rows = [run_row("shipped", None, result["runs"]["shipped"])]
    for pruner, session in result["sessions"].items():
        rows.append(run_row(f"tuned, pruner {pruner}", session, result["runs"].get(pruner)))
    title = f"{result['task']} {result['learner']}, " + (
        f"--timeout {result['timeout']:.0f}" if result["timeout"] else "trials per session as given"
    )
    sittings = [
        f"{pruner}: {session['measure']['invocations']} sittings ({session['measure']['killed_invocations']} killed)"
        for pruner, session in result["sessions"].items()
        if session["measure"].get("invocations", 1) > 1
    ]
    note = f"\n\nwall and CPU summed over the sittings of a session: {'; '.join(sittings)}" if sittings else ""
    return f"{title}\n\n" + markdown_table(headers, rows) + note


def run_row(label: str, session: dict | None, run: dict | None) -> list:
    """A row of the pruning table: the session's figures (empty for the shipped config) and the fitted run's."""
    cells = [label]
    if session:
        s, m = session["summary"], session["measure"]
        best = s["best"]
        cells += [f"{s['finished']} ({s['pruned']})", minutes(m["wall_s"]), minutes(m["cpu_s"])]
        cells += [f"{m['mean_loadavg']:.1f}", f"{s['trials_per_hour']:.0f}", cpu_per_trial(session)]
        cells += [f"{four(best['value'])} (#{best['number']})" if best else None, four(s.get("best_within_budget"))]
    else:
        cells += [None] * 8
    scores = (run or {}).get("scores") or {}
    cells += [four(scores.get(key)) for key in ("cv", "last_day", "public", "private")]
    fit_wall = (run or {}).get("fit_wall_s")
    peak = ((run or {}).get("level1") or {}).get("peak_rss_mib")
    cells += [None if fit_wall is None else f"{fit_wall:.0f}", None if peak is None else f"{peak:,.0f}"]
    return cells


def cpu_per_trial(session: dict) -> str | None:
    """CPU seconds of the session per finished trial (less sensitive than wall time to other work on the cores)."""
    finished = session["summary"]["finished"]
    return f"{session['measure']['cpu_s'] / finished:.0f}" if finished else None


def workers_report(result: dict) -> str:
    """The table of the workers section."""
    headers = [
        "arm",
        "session wall min",
        "trials",
        "distinct params",
        "trials/h",
        "mean trial s",
        "CPU min",
        "CPU s/trial",
    ]
    headers += ["mean load", "best CV"]
    rows = []
    for label, session in result["sessions"].items():
        s, m = session["summary"], session["measure"]
        rows.append(
            [
                label,
                minutes(m["wall_s"]),
                s["finished"],
                s["distinct_params"],
                f"{s['trials_per_hour']:.0f}",
                f"{s['mean_trial_s']:.1f}" if s["mean_trial_s"] else None,
                minutes(m["cpu_s"]),
                cpu_per_trial(session),
                f"{m['mean_loadavg']:.1f}",
                four(s["best"]["value"]) if s["best"] else None,
            ]
        )
    title = f"{result['task']} {result['learner']}, --timeout {result['timeout']:.0f} s per session, pruner none"
    return f"{title}\n\n" + markdown_table(headers, rows)


def objective_report(result: dict) -> str:
    """The table of the objective section: the shipped blend, then each objective's tuned run and blend."""
    task = result["task"]
    headers = ["blend of", "tuning wall min", "trials", "best objective", "tuned run CV", "last day", "public"]
    headers += ["private", "blend nested CV", "blend last day", "blend public", "blend private", "MLP weights"]
    rows = [["shipped runs", None, None, None, None, None, None, None, *blend_cells(result["shipped"], task)]]
    for objective, arm in result["arms"].items():
        s, scores = arm["summary"], arm["runs"]["tuned"]["scores"] or {}
        cells = [f"shipped + tuned (objective {objective})", minutes(arm["measure"]["wall_s"]), s["finished"]]
        cells += [four(s["best"]["value"]) if s["best"] else None]
        cells += [four(scores.get(key)) for key in ("cv", "last_day", "public", "private")]
        rows.append(cells + blend_cells(arm, task))
    missing = [o for o in OBJECTIVES if o not in result["available"]]
    note = f"\n\nnot available in this mmscel: {', '.join(missing)}" if missing else ""
    return markdown_table(headers, rows) + note


def blend_cells(arm: dict, task: str) -> list:
    """The blend's scores and the weights of the MLP runs in it (shipped, tuned)."""
    row = arm["board"].get(f"{task}/blend") or {}
    weights = (arm.get("weights") or {}).get(task, {})
    mlp = " / ".join(f"{w:.2f}" for run, w in weights.items() if "_mlp" in run)
    return [four(row.get(key)) for key in ("cv", "last_day", "public", "private")] + [mlp or None]


# ----------------------------------------------------------------------------- main


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--trials", type=int, default=40, help="trials per mlp and lgbm session")
    parser.add_argument("--pruners", default=",".join(PRUNERS), help="pruners compared (mlp, lgbm)")
    parser.add_argument("--mlp-task", default="cite", choices=["cite", "multi"])
    parser.add_argument("--mlp-timeout", type=float, default=None, help="seconds per mlp session (default: none)")
    parser.add_argument("--lgbm-task", default="multi", choices=["cite", "multi"])
    parser.add_argument("--lgbm-timeout", type=float, default=None, help="seconds per lgbm session (default: none)")
    parser.add_argument("--workers-task", default="cite", choices=["cite", "multi"])
    parser.add_argument("--workers-learner", default="mlp", choices=LEARNERS)
    parser.add_argument("--workers-timeout", type=float, default=600, help="seconds per workers session")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="objectives compared (objective)")
    parser.add_argument("--objective-trials", type=int, default=40, help="trials per objective session")
    parser.add_argument("--label", help="save the sections as SECTION:LABEL (keeps an earlier measurement)")
    parser.add_argument("--resume", action="store_true", help="continue the mlp/lgbm studies of an earlier run")
    parser.add_argument("--stop-after", type=float, help="start no trial after this many seconds; resume later")
    parser.add_argument("--report", action="store_true", help="print the tables of OUT/tune_bench.json; run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny scale, 3 trials, 30 s timeouts, /tmp/bench_smoke")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.scale, args.trials, args.objective_trials = "tiny", 3, 3
        args.lgbm_timeout = args.lgbm_timeout and 30
        args.workers_timeout = 30
        args.out = SMOKE_OUT if "--out" not in argv else args.out
    args.sections = [s for s in args.section.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.pruners, args.objectives = args.pruners.split(","), args.objectives.split(",")
    args.base_learners = ("ridge", "mlp") if args.smoke else LEARNERS
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["step"]:
        return step(argv[1:])
    args = arguments(argv)
    if args.report:
        return print_reports(args.out, args.sections)
    bench = Bench(args)
    runners = {
        "mlp": (lambda: section_pruning(bench, "mlp", args.mlp_task, args.mlp_timeout), pruning_report),
        "lgbm": (lambda: section_pruning(bench, "lgbm", args.lgbm_task, args.lgbm_timeout), pruning_report),
        "workers": (lambda: section_workers(bench), workers_report),
        "objective": (lambda: section_objective(bench), objective_report),
    }
    for section in args.sections:
        run, _ = runners[section]
        result = {"scale": args.scale, "loadavg_at_start": os.getloadavg(), "source_at_start": source_state()}
        outcome = run()
        if outcome is None:
            print(f"\n{section}: unfinished; nothing saved", flush=True)
            continue
        result.update(outcome)
        result.update(loadavg_at_end=os.getloadavg(), source_at_end=source_state())
        path = save_result(args.out, "tune_bench", f"{section}:{args.label}" if args.label else section, result)
        print(f"\n{section}\n\n{REPORTS[section](result)}\n\nwrote {path}", flush=True)
    return 0


REPORTS = {"mlp": pruning_report, "lgbm": pruning_report, "workers": workers_report, "objective": objective_report}


def print_reports(out: Path, sections: list[str]) -> int:
    """Print the tables of the saved sections of ``OUT/tune_bench.json``, with their commands and load."""
    path = out / "tune_bench.json"
    saved = json.loads(path.read_text())["sections"] if path.exists() else {}
    for key in [key for key in saved if key.partition(":")[0] in sections]:
        entry, result = saved[key], saved[key]["result"]
        load = ", ".join(f"{x:.1f}" for x in result["loadavg_at_start"])
        print(f"\n{key}: python bench/{entry['command']} ({entry['written']}; load at start {load})\n")
        print(REPORTS[key.partition(":")[0]](result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
