"""The report's sections, each built from the Python API; a piece the store or data lacks becomes a note."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmscel.errors import InputError
from mmscel.reporting import plots, scores
from mmscel.reporting.html import Section, escape, figure, heading, note, table
from mmscel.store import RunStore

REFERENCES = (("mean profile", "floor", "mean_profile"), ("oracle", "noise-free E(y|state)", "oracle"))
REFERENCES += (("reachable", "E(y|state), chromatin averaged", "reachable"),)


@dataclass
class Context:
    """What every section reads: the store, the data, the leaderboard, the truth and which tasks have data."""

    store: RunStore
    data_dir: Path
    cache_dir: Path | None
    board: pd.DataFrame
    truth: dict | None
    data_notes: dict[str, str]  # task -> why its data cannot be read (tasks with data are absent)

    @property
    def tasks(self) -> list[str]:
        """Tasks with at least one finished run, in order."""
        return sorted({run.task for run in self.store.runs()})

    def with_data(self, section: Section, task: str) -> bool:
        """Whether ``task``'s training truth can be read; if not, the section gets a note saying why."""
        if task in self.data_notes:
            section.add(note(f"{task}: {self.data_notes[task]}"))
            return False
        return True


def references(truth: dict | None, tasks) -> pd.DataFrame:
    """The floor, oracle and reachable reference per task as the data's ``truth.json`` records them.

    Parameters
    ----------
    truth
        The parsed ``truth.json`` (None: no truth).
    tasks
        Tasks to list.

    Returns
    -------
    pandas.DataFrame
        ``task``, ``name``, ``kind``, ``cv`` (the train figure, where recorded), ``public``, ``private``.
    """
    rows = []
    for task in tasks:
        for name, kind, key in REFERENCES:
            figures = ((truth or {}).get(key) or {}).get(task)
            if figures:
                rows.append({"task": task, "name": name, "kind": kind, "cv": figures.get("train"), **figures})
    return pd.DataFrame(rows, columns=["task", "name", "kind", "cv", "public", "private"])


def leaderboard(ctx: Context) -> Section:
    """The runs and blends of each task beside the floor, the oracle and the reachable reference."""
    section = Section("leaderboard", "Leaderboard", "CV (nested for blends), last-day holdout, public and private.")
    if ctx.board.empty:
        section.add(note(f"no finished run or blend in {ctx.store.root} for the tasks of {ctx.data_dir}"))
        return section
    refs = references(ctx.truth, ctx.tasks)
    if ctx.truth is None:
        section.add(note(f"no truth/ in {ctx.data_dir}: public and private scores and the references are left out"))
    columns = ["name", "kind", "cv", "last_day", "public", "private"]
    for task, rows in ctx.board.groupby("task", sort=True):
        section.add(heading(task))
        own = refs.loc[refs["task"] == task].reindex(columns=columns)
        shown = pd.concat([rows[columns], own], ignore_index=True) if not own.empty else rows[columns]
        floor, top = _reference(refs, task, "mean profile"), _reference(refs, task, "reachable")
        if floor is not None and top is not None and top > floor:
            shown["headroom"] = ((shown["private"] - floor) / (top - floor)).where(shown["kind"].ne("floor"))
        section.add(table(shown.dropna(axis=1, how="all"), formats={"headroom": "{:.0%}"}))
    section.add(figure(plots.leaderboard(ctx.board, refs), "leaderboard per task"))
    return section


def _reference(refs: pd.DataFrame, task: str, name: str) -> float | None:
    value = refs.loc[(refs["task"] == task) & (refs["name"] == name), "private"]
    return None if value.empty or pd.isna(value.iloc[0]) else float(value.iloc[0])


def runs(ctx: Context) -> Section:
    """Each task's runs: a table, the score of every fold, and the OOF score by donor and by day."""
    section = Section("runs", "Runs", "Cross-validation by fold, by donor and by day (out-of-fold predictions).")
    if not ctx.tasks:
        section.add(note(f"no finished level-1 run in {ctx.store.root} (run mmscel level1)"))
    for task in ctx.tasks:
        section.add(heading(task))
        section.add(table(_run_table(ctx.store, task), formats={"seconds": "{:.1f}"}))
        section.add(figure(plots.fold_scores(scores.fold_table(ctx.store, task), f"{task}: score per fold"), "folds"))
        if ctx.with_data(section, task):
            cells = scores.cell_scores(ctx.store, task, data_dir=ctx.data_dir, cache_dir=ctx.cache_dir)
            section.add(figure(plots.breakdown(cells, f"{task}: OOF score by donor and by day"), "by donor, day"))
    return section


def _run_table(store: RunStore, task: str) -> pd.DataFrame:
    rows = [
        {
            "run": r.name,
            "learner": r.learner,
            "folds": r.fold_scheme,
            "cv": r.cv,
            "floor": r.cv_mean_profile,
            "last_day": r.last_day,
            "cells": r.validated_rows,
            "seconds": r.wall_seconds,
        }
        for r in store.runs(task)
    ]
    return pd.DataFrame(rows)


def correlation(ctx: Context) -> Section:
    """The correlation of the runs' OOF predictions: runs that agree less leave a blend more to gain."""
    lead = "Mean per-cell Pearson between two runs' OOF predictions: the lower, the more a blend can gain."
    section = Section("correlation", "OOF correlation", lead)
    for task in ctx.tasks:
        section.add(heading(task))
        if len(ctx.store.runs(task)) < 2:
            section.add(note(f"{task}: one run only, nothing to correlate"))
        elif ctx.with_data(section, task):
            frame = scores.oof_correlation(ctx.store, task, data_dir=ctx.data_dir, cache_dir=ctx.cache_dir)
            section.add(figure(plots.correlation(frame, task), f"{task} OOF correlation"))
            if frame.attrs.get("skipped"):
                section.add(note(f"left out (another target space): {', '.join(frame.attrs['skipped'])}"))
    return section


def blends(ctx: Context) -> Section:
    """Every blend's weights per task, and its in-sample, nested and last-day scores."""
    section = Section("blend", "Blend weights", "Weights on the simplex per task; nested = weights fit on K-1 folds.")
    weights = scores.blend_weights(ctx.store)
    if weights.empty:
        section.add(note(f"no blend in {ctx.store.root} (run mmscel level2 configs/blend.yaml)"))
        return section
    section.add(figure(plots.blend_weights(weights), "blend weights"))
    rows = [
        {
            "blend": blend.name,
            "task": task,
            "method": info.method,
            "in_sample": info.in_sample,
            "nested": info.nested,
            "last_day": info.last_day,
            "best single run": info.best_single["run"],
            "best single": info.best_single["score"],
            "nested below best single": "yes" if info.flag_nested_below_best_single else "no",
        }
        for blend in ctx.store.blends()
        for task, info in blend.tasks.items()
    ]
    section.add(table(pd.DataFrame(rows)))
    return section


def targets(ctx: Context) -> Section:
    """Per-protein scores (CITEseq) and the distribution of per-gene scores (Multiome)."""
    lead = "Pearson across the validated cells, target by target (OOF; Multiome genes rebuilt from SVD coefficients)."
    section = Section("targets", "Per-target scores", lead)
    for task in ctx.tasks:
        section.add(heading("CITEseq proteins" if task == "cite" else "Multiome genes"))
        if not ctx.with_data(section, task):
            continue
        frame = scores.target_scores(ctx.store, task, data_dir=ctx.data_dir, cache_dir=ctx.cache_dir)
        if task == "cite":
            section.add(figure(plots.protein_scores(frame), "per-protein scores"))
            best = frame.columns[0]
            worst = frame[best].nsmallest(8).rename(f"{best}").reset_index()
            section.add(f"<p>The proteins {escape(best)} predicts worst:</p>" + table(worst))
        else:
            section.add(figure(plots.gene_scores(frame), "per-gene score distribution"))
            constant = int(frame.iloc[:, 0].isna().sum())
            if constant:
                section.add(note(f"{constant} of {len(frame)} genes are constant over the validated cells: left out"))
    return section


def validation(ctx: Context) -> Section:
    """CV and last-day scores against the private leaderboard, for runs and blends."""
    lead = "Does validation rank runs as the private leaderboard (the last day) does?"
    section = Section("validation", "Validation against private", lead)
    if ctx.truth is None or ctx.board.empty or ctx.board["private"].isna().all():
        section.add(note(f"no truth/ in {ctx.data_dir}: the private scores to check validation against are unknown"))
        return section
    section.add(figure(plots.cv_vs_private(ctx.board), "validation against private"))
    return section


def tuning(ctx: Context) -> Section:
    """The history and the parameter importances of the tuning study changed last."""
    section = Section("tuning", "Tuning", "The tuning study under tune/ that changed last.")
    try:
        study = scores.load_study(ctx.store)
    except InputError as exc:
        section.add(note(str(exc)))
        return section
    from mmscel.tune.report import best_lines, trial_rows

    states = pd.Series([t.state.name.lower() for t in study.trials]).value_counts()
    counted = ", ".join(f"{n} {state}" for state, n in states.items())
    section.add(f"<p>study {escape(study.study_name)}: {len(study.trials)} trials ({escape(counted)})</p>")
    for line in best_lines(study):
        section.add(f"<p>{escape(line)}</p>")
    section.add(figure(plots.study_history(study), "tuning history"))
    importances = _importances(study)
    if importances:
        section.add(figure(plots.param_importances(importances), "parameter importances"))
    else:
        section.add(note("parameter importances need two complete trials with distinct values"))
    rows = pd.DataFrame(trial_rows(study))[["number", "state", "value", "last_day", "seconds", "params"]]
    rows = rows.sort_values("value", ascending=False, na_position="last").head(10)
    rows["params"] = rows["params"].map(lambda p: ", ".join(f"{k}={_short(v)}" for k, v in p.items()))
    section.add(table(rows, formats={"seconds": "{:.1f}"}))
    return section


def _importances(study) -> dict[str, float]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        return optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


BUILDERS = (leaderboard, runs, correlation, blends, targets, validation, tuning)
