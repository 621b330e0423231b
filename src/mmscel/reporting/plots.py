"""The report's figures, drawn with matplotlib (no pyplot state: safe in a server or a test).

Every function takes the tables the API returns (:func:`mmscel.leaderboard`,
:mod:`mmscel.reporting.scores`) and returns a :class:`matplotlib.figure.Figure`;
a notebook shows it as the value of a cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

WIDTH = 9.5  # inches; at the page's 100 dpi the figures fill its column
BLEND_COLOR = "#111111"
REFERENCE_STYLE = {
    "mean profile": {"color": "#9e9e9e", "linestyle": "--"},
    "reachable": {"color": "#2e7d32", "linestyle": "-"},
    "oracle": {"color": "#000000", "linestyle": ":"},
}


def run_colors(names) -> dict[str, str]:
    """One colour per run name (tab10, in sorted order), so a run keeps its colour across figures."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    unique = sorted(dict.fromkeys(names))
    return {name: palette[i % len(palette)] for i, name in enumerate(unique)}


def _figure(n_panels: int, height: float = 3.2, width: float = WIDTH) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    return figure, list(axes)


def leaderboard(board: pd.DataFrame, references: pd.DataFrame | None = None) -> Figure:
    """Scores of every run and blend per task: CV, last day and private, beside the references.

    Parameters
    ----------
    board
        :func:`mmscel.leaderboard`'s frame.
    references
        ``task``, ``name``, ``private`` (and ``public``) of the floor, the oracle and the reachable
        reference; None or empty where the data has no truth.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tasks = sorted(board["task"].unique())
    figure, axes = _figure(len(tasks), height=0.9 + 0.32 * board.groupby("task").size().max())
    markers = {"cv": ("o", "CV"), "last_day": ("^", "last day"), "private": ("s", "private")}
    for ax, task in zip(axes, tasks):
        rows = board[board["task"] == task].iloc[::-1]
        y = np.arange(len(rows))
        for column, (marker, label) in markers.items():
            values = pd.to_numeric(rows[column], errors="coerce")
            if values.notna().any():
                ax.scatter(values, y, marker=marker, s=42, label=label, zorder=3)
        if references is not None and not references.empty:
            for row in references[references["task"] == task].itertuples():
                if pd.notna(row.private):
                    style = REFERENCE_STYLE.get(row.name, {})
                    ax.axvline(row.private, label=f"{row.name} (private)", linewidth=1.2, **style)
        ax.set_yticks(y, rows["name"])
        ax.set_title(task)
        ax.set_xlabel("mean per-cell Pearson")
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
    return figure


def fold_scores(folds: pd.DataFrame, title: str = "") -> Figure:
    """Each run's score per fold (the last-day holdout included), and the fold's mean-profile floor.

    Parameters
    ----------
    folds
        :func:`mmscel.reporting.scores.fold_table` of one task.
    title
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, (ax,) = _figure(1, height=3.0)
    colors = run_colors(folds["run"])
    order = list(dict.fromkeys(folds["fold"]))
    for run, rows in folds.groupby("run", sort=True):
        x = [order.index(f) for f in rows["fold"]]
        ax.plot(x, rows["score"], marker="o", color=colors[run], label=run)
    floor = folds.groupby("fold", sort=False)["mean_profile"].mean().reindex(order)
    ax.plot(range(len(order)), floor, linestyle="--", color="#9e9e9e", label="mean profile")
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel("fold")
    ax.set_ylabel("mean per-cell Pearson")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def breakdown(cells: pd.DataFrame, title: str = "") -> Figure:
    """Mean out-of-fold score of each run by donor and by day.

    Parameters
    ----------
    cells
        :func:`mmscel.reporting.scores.cell_scores` of one task.
    title
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, axes = _figure(2, height=3.0)
    colors = run_colors(cells["run"])
    for ax, by in zip(axes, ("donor", "day")):
        means = cells.groupby(["run", by])["score"].mean().unstack(by)
        x = np.arange(means.shape[1])
        for run, values in means.iterrows():
            ax.plot(x, values.to_numpy(), marker="o", color=colors[run], label=run)
        ax.set_xticks(x, [str(v) for v in means.columns])
        ax.set_xlabel(by)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean per-cell Pearson (OOF)")
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(title)
    return figure


def correlation(frame: pd.DataFrame, title: str = "") -> Figure:
    """Heatmap of the runs' out-of-fold correlation (:func:`mmscel.reporting.scores.oof_correlation`).

    Parameters
    ----------
    frame
        Runs x runs.
    title
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    size = 1.6 + 0.45 * len(frame)
    figure, (ax,) = _figure(1, height=size, width=size + 1.6)
    values = frame.to_numpy()
    off_diagonal = values[~np.eye(len(values), dtype=bool)]
    low = float(off_diagonal.min()) if off_diagonal.size else 0.0
    image = ax.imshow(values, cmap="viridis", vmin=min(low, 0.999), vmax=1.0)
    ax.set_xticks(range(len(frame)), frame.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(frame)), frame.index)
    for (i, j), value in np.ndenumerate(values):
        shade = "white" if value < (low + 1) / 2 else "black"
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8, color=shade)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    return figure


def blend_weights(weights: pd.DataFrame) -> Figure:
    """The weight of each run in each blend, one panel per task.

    Parameters
    ----------
    weights
        :func:`mmscel.reporting.scores.blend_weights`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tasks = sorted(weights["task"].unique())
    figure, axes = _figure(len(tasks), height=0.9 + 0.3 * weights.groupby("task").size().max())
    for ax, task in zip(axes, tasks):
        table = weights[weights["task"] == task].pivot_table(
            index="run", columns="blend", values="weight", aggfunc="sum"
        )
        height = 0.8 / table.shape[1]
        for k, blend in enumerate(table.columns):
            y = np.arange(len(table)) + k * height
            ax.barh(y, table[blend].fillna(0.0), height=height, label=blend)
        ax.set_yticks(np.arange(len(table)) + 0.4 - height / 2, table.index)
        ax.set_xlim(0, 1)
        ax.set_xlabel("weight")
        ax.set_title(task)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].legend(fontsize=8, title="blend")
    return figure


def protein_scores(frame: pd.DataFrame) -> Figure:
    """Per-protein Pearson across cells of each run, proteins sorted by the first run's score.

    Parameters
    ----------
    frame
        :func:`mmscel.reporting.scores.target_scores` of CITEseq (proteins x runs).

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, (ax,) = _figure(1, height=3.4)
    colors = run_colors(frame.columns)
    order = frame.iloc[:, 0].sort_values(na_position="first").index
    x = np.arange(len(order))
    for run in frame.columns:
        ax.plot(x, frame.loc[order, run], color=colors[run], label=run, linewidth=1.2)
    ax.set_xlabel(f"proteins, sorted by {frame.columns[0]}")
    ax.set_ylabel("Pearson across cells (OOF)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return figure


def gene_scores(frame: pd.DataFrame, bins: int = 40) -> Figure:
    """The distribution of per-gene Pearson across cells of each run, with each run's median.

    Parameters
    ----------
    frame
        :func:`mmscel.reporting.scores.target_scores` of Multiome (genes x runs).
    bins
        Histogram bins.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, (ax,) = _figure(1, height=3.2)
    colors = run_colors(frame.columns)
    values = frame.to_numpy()
    edges = np.linspace(np.nanmin(values), np.nanmax(values), bins + 1) if np.isfinite(values).any() else bins
    for run in frame.columns:
        scores = frame[run].dropna().to_numpy()
        median = float(np.median(scores)) if scores.size else float("nan")
        ax.hist(scores, bins=edges, histtype="step", linewidth=1.5, color=colors[run], label=f"{run} ({median:.3f})")
        ax.axvline(median, color=colors[run], linestyle=":", linewidth=1)
    ax.set_xlabel("Pearson across cells, per gene (OOF)")
    ax.set_ylabel("genes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="run (median)", title_fontsize=8)
    return figure


def cv_vs_private(board: pd.DataFrame) -> Figure:
    """Validation against the private leaderboard: each run's CV and last-day score beside its private score.

    A validation that ranks runs as the private leaderboard does is one to
    trust; the titles give the rank correlations.

    Parameters
    ----------
    board
        :func:`mmscel.leaderboard`'s frame, with ``private`` scores.

    Returns
    -------
    matplotlib.figure.Figure
    """
    board = board[board["private"].notna()]
    tasks = sorted(board["task"].unique())
    figure, axes = _figure(len(tasks), height=3.6)
    for ax, task in zip(axes, tasks):
        rows = board[board["task"] == task]
        blend = rows["kind"].str.startswith("blend")
        ranks = []
        for column, marker, label in (("cv", "o", "CV"), ("last_day", "^", "last day")):
            values = pd.to_numeric(rows[column], errors="coerce")
            ax.scatter(values[~blend], rows["private"][~blend], marker=marker, s=40, label=label)
            blend_label = "blend" if column == "cv" and blend.any() else None
            ax.scatter(values[blend], rows["private"][blend], marker=marker, s=70, color=BLEND_COLOR, label=blend_label)
            ranks.append(f"{label} {_spearman(values, rows['private']):+.2f}")
        for row in rows.itertuples():
            ax.annotate(row.name, (row.cv, row.private), fontsize=7, xytext=(4, 2), textcoords="offset points")
        low = np.nanmin(rows[["cv", "last_day", "private"]].to_numpy(dtype=float))
        high = np.nanmax(rows[["cv", "last_day", "private"]].to_numpy(dtype=float))
        ax.plot([low, high], [low, high], color="#9e9e9e", linewidth=1, linestyle="--")
        ax.set_title(f"{task}: Spearman with private: {', '.join(ranks)}", fontsize=9)
        ax.set_xlabel("validation score")
        ax.set_ylabel("private")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _spearman(a: pd.Series, b: pd.Series) -> float:
    both = pd.DataFrame({"a": pd.to_numeric(a, errors="coerce"), "b": b}).dropna()
    if len(both) < 3:
        return float("nan")
    return float(both["a"].rank().corr(both["b"].rank()))


def study_history(study) -> Figure:
    """A tuning study's trials: each trial's value (pruned ones at their last reported fold) and the best so far.

    Parameters
    ----------
    study
        An :class:`optuna.Study` to maximise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import optuna

    states = optuna.trial.TrialState
    figure, (ax,) = _figure(1, height=3.2)
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    pruned = [t for t in study.trials if t.state == states.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in complete], [t.value for t in complete], s=30, label="complete", zorder=3)
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.scatter([t.number for t in pruned], last, marker="x", s=30, color="#c62828", label="pruned (last fold)")
    if complete:
        numbers = [t.number for t in complete]
        ax.step(numbers, np.maximum.accumulate([t.value for t in complete]), where="post", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"study {study.study_name}: {len(study.trials)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def param_importances(importances: dict[str, float]) -> Figure:
    """The parameters' importances (:func:`optuna.importance.get_param_importances`), largest on top.

    Parameters
    ----------
    importances
        Parameter -> importance.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(importances)[::-1]
    figure, (ax,) = _figure(1, height=0.9 + 0.35 * len(names))
    ax.barh(names, [importances[name] for name in names], color="#1565c0")
    ax.set_xlabel("importance (fANOVA)")
    ax.grid(axis="x", alpha=0.3)
    return figure
