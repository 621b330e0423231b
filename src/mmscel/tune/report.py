"""A study's report: a table of its trials, and Optuna's plots as HTML files in the study folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mmscel.fsutil import atomic_path

PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}


def trial_rows(study) -> list[dict]:
    """One row per trial: number, state, value, per-fold scores, last day, seconds, pruned fold.

    Parameters
    ----------
    study
        The study.

    Returns
    -------
    list of dict
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        end = trial.datetime_complete or dt.datetime.now()
        seconds = (end - trial.datetime_start).total_seconds() if trial.datetime_start else None
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "fold_scores": trial.user_attrs.get("fold_scores", {}),
                "last_day": trial.user_attrs.get("last_day"),
                "seconds": seconds,
                "pruned_at_fold": trial.user_attrs.get("pruned_at_fold"),
                "retry_of": trial.system_attrs.get("failed_trial"),
                "params": trial.params,
            }
        )
    return rows


def trials_table(study):
    """A rich table of the study's trials (see :func:`trial_rows`).

    Parameters
    ----------
    study
        The study; each trial's fold scores, last-day score and pruned fold
        are read from its user attributes.

    Returns
    -------
    rich.table.Table
    """
    from rich.table import Table

    table = Table(title=f"study {study.study_name}: {len(study.trials)} trials")
    for column in ("trial", "state", "value", "fold scores", "last day", "seconds", "pruned at fold", "params"):
        numeric = column in ("trial", "value", "last day", "seconds")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column in ("state", "value"))
    for row in trial_rows(study):
        folds = " ".join(f"{name}:{_fmt(score)}" for name, score in row["fold_scores"].items())
        state = row["state"] + (f" (retry of {row['retry_of']})" if row["retry_of"] is not None else "")
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        params = ", ".join(f"{key.partition('.')[2]}={_short(value)}" for key, value in row["params"].items())
        cells = (str(row["number"]), state, _fmt(row["value"]), folds, _fmt(row["last_day"]), seconds)
        table.add_row(*cells, row["pruned_at_fold"] or "", params)
    return table


def best_lines(study) -> list[str]:
    """The best trial's value and parameters, and the parameters' importances (two complete trials on).

    Parameters
    ----------
    study
        The study (maximised); importances are Optuna's default (fANOVA) over its complete trials.

    Returns
    -------
    list of str
        Empty while no trial has completed.
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return []
    best = study.best_trial
    params = ", ".join(f"{key}={_short(value)}" for key, value in best.params.items())
    lines = [f"best: trial {best.number}, {best.value:.4f} ({params})"]
    if len(complete) > 1:
        try:
            importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError):
            return lines
        lines.append("importances: " + ", ".join(f"{key} {value:.2f}" for key, value in importances.items()))
    return lines


def write_plots(study, folder: Path) -> list[Path]:
    """Write Optuna's plots as HTML files (plotly.js once, beside them) in ``folder``.

    A plot that needs more trials than the study has (importances need two complete ones) is skipped.

    Parameters
    ----------
    study
        The study.
    folder
        The study's folder.

    Returns
    -------
    list of Path
        The files written.
    """
    import optuna.visualization as vis

    Path(folder).mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in PLOTS.items():
        try:
            figure = getattr(vis, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        path = Path(folder) / f"{name}.html"
        with atomic_path(path) as tmp:  # workers sharing a study may write its plots at the same time
            figure.write_html(tmp, include_plotlyjs="directory")
        written.append(path)
    return written


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
