"""Scoring against the hidden truth: submissions and test predictions on the local leaderboard, as Kaggle would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mmscel.data import layout
from mmscel.errors import InputError
from mmscel.metrics import headroom_share, pearson_per_segment
from mmscel.submission import read_submission, validate_values

SPLIT_ORDER = ("public", "private")


@dataclass
class Scores:
    """Mean per-cell Pearson per (task, split), pooled per split, and cell counts.

    Attributes
    ----------
    by_task
        Task -> split -> score.
    pooled
        Split -> score over the cells of both tasks.
    n_cells
        Task -> split -> scored cells.
    """

    by_task: dict[str, dict[str, float]]
    pooled: dict[str, float]
    n_cells: dict[str, dict[str, int]]


def load_truth(data_dir: str | Path) -> tuple[dict, Path]:
    """Find the hidden truth of a synthetic or imported dataset.

    Parameters
    ----------
    data_dir
        The dataset folder (with ``truth/``).

    Returns
    -------
    tuple
        The parsed ``truth.json``, and the path of the solution parquet.

    Raises
    ------
    InputError
        When either file is missing or ``truth.json`` is not valid JSON.
    """
    truth_dir = Path(data_dir) / layout.TRUTH_DIR
    truth_json, solution = truth_dir / layout.TRUTH_JSON, truth_dir / layout.SOLUTION
    for path in (truth_json, solution):
        if not path.exists():
            raise InputError(path, "file not found: scoring needs the hidden truth of a synthetic or imported dataset")
    try:
        return json.loads(truth_json.read_text()), solution
    except json.JSONDecodeError:
        raise InputError(truth_json, "not valid JSON") from None


def score_values(values: np.ndarray, solution_path: Path, where: str = "submission") -> Scores:
    """Score predictions aligned with the solution rows (one value per evaluation row).

    Parameters
    ----------
    values
        One prediction per solution row.
    solution_path
        The solution parquet (``target``, ``task``, ``split``, ``cell`` per row).
    where
        What to name in an error.

    Returns
    -------
    Scores
        Per task and split, and pooled per split.

    Raises
    ------
    InputError
        When the row count is wrong or a value is not finite.
    """
    per_cell, _, task, split = _cell_scores(values, solution_path, where)
    by_task, n_cells, pooled = {}, {}, {}
    for task_name in ("cite", "multi"):
        for split_name in SPLIT_ORDER:
            mask = (task == task_name) & (split == split_name)
            if mask.any():
                by_task.setdefault(task_name, {})[split_name] = float(per_cell[mask].mean())
                n_cells.setdefault(task_name, {})[split_name] = int(mask.sum())
    for split_name in SPLIT_ORDER:
        mask = split == split_name
        if mask.any():
            pooled[split_name] = float(per_cell[mask].mean())
    return Scores(by_task, pooled, n_cells)


def group_scores(values: np.ndarray, data_dir: str | Path, cache_dir: str | Path | None, by: list[str]) -> pd.DataFrame:
    """Mean per-cell Pearson per task, split and group of test cells sharing metadata values.

    Parameters
    ----------
    values
        One prediction per solution row (a submission's values).
    data_dir, cache_dir
        A prepared dataset with ``truth/``, and its cache.
    by
        Metadata columns to group the cells by (e.g. ``donor``, ``day``, ``cell_type``).

    Returns
    -------
    pandas.DataFrame
        Columns ``task``, ``split``, the ``by`` columns, ``cells`` and ``score``, one row per group.

    Raises
    ------
    InputError
        When the dataset has no truth, its cache is missing or stale, or a column is not in the metadata.
    """
    from mmscel.data.load import load
    from mmscel.submission import evaluation_rows

    _, solution = load_truth(data_dir)
    rows = evaluation_rows(data_dir, cache_dir)
    per_cell, starts, cell_task, split = _cell_scores(values, solution, "submission")
    frames = []
    for task in ("cite", "multi"):
        of_task = cell_task == task
        if not of_task.any():
            continue
        metadata = load(task, "test", data_dir, cache_dir, check=False, inputs=False, targets=False).metadata
        unknown = [column for column in by if column not in metadata.columns]
        if unknown:
            raise InputError(
                Path(data_dir) / layout.METADATA,
                f"no column {unknown[0]!r} to group by; it has {', '.join(map(str, metadata.columns))}",
            )
        groups = metadata.iloc[rows.cell_code[starts[of_task]]][by].reset_index(drop=True)
        frames.append(groups.assign(task=task, split=split[of_task], score=per_cell[of_task]))
    frame = pd.concat(frames, ignore_index=True)
    summary = frame.groupby(["task", "split", *by], sort=True, observed=True)["score"].agg(["size", "mean"])
    return summary.rename(columns={"size": "cells", "mean": "score"}).reset_index()


def _cell_scores(values: np.ndarray, solution_path: Path, where: str):
    """Per-cell Pearson of values aligned with the solution rows; each cell's first row, task and split."""
    table = pq.read_table(solution_path, columns=["target", "task", "split", "cell"], read_dictionary=["task", "split"])
    truth = table.column("target").to_numpy()
    validate_values(np.asarray(values, dtype=np.float64), len(truth), None, where, check_constant=False)
    per_cell, starts = _per_cell(truth, values, table.column("cell").to_numpy())
    task = np.asarray(table.column("task").to_numpy(zero_copy_only=False), dtype=object)[starts]
    split = np.asarray(table.column("split").to_numpy(zero_copy_only=False), dtype=object)[starts]
    return per_cell, starts, task, split


def _per_cell(truth: np.ndarray, values: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson of each cell's run of rows, and the first row of each run."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(cell) != 0) + 1])
    return pearson_per_segment(truth, values, starts), starts


def score_submission(path: str | Path, data_dir: str | Path) -> tuple[Scores, dict]:
    """Score a submission file on a dataset with ``truth/``.

    Parameters
    ----------
    path
        The submission CSV.
    data_dir
        The dataset with ``truth/``.

    Returns
    -------
    tuple
        The :class:`Scores`, and the dataset's ``truth.json``.

    Raises
    ------
    InputError
        When the dataset has no truth, or the file is unreadable or invalid.
    """
    truth, solution = load_truth(data_dir)
    return score_values(read_solution_aligned(path, data_dir), solution, str(path)), truth


def read_solution_aligned(path: str | Path, data_dir: str | Path) -> np.ndarray:
    """A submission's values, checked to have one row per row of the dataset's hidden solution.

    Parameters
    ----------
    path
        The submission CSV.
    data_dir
        The dataset with ``truth/``.

    Returns
    -------
    numpy.ndarray
        The ``target`` column, in ``row_id`` order.

    Raises
    ------
    InputError
        When the dataset has no truth, or the file is unreadable or invalid.
    """
    _, solution = load_truth(data_dir)
    n_rows = pq.ParquetFile(solution).metadata.num_rows
    return read_submission(path, n_rows, rows_of=f"{solution} of the dataset's truth")


def leaderboard_rows(name: str, scores: Scores, truth: dict) -> list[dict]:
    """Rows of the leaderboard table: the submission beside the floor, the oracle and the reachable reference.

    ``headroom`` is measured against the reachable reference when ``truth.json``
    has one, else against the oracle.

    Parameters
    ----------
    name
        The submission's label.
    scores
        Its scores.
    truth
        The dataset's ``truth.json`` (``oracle``, ``mean_profile``, optionally ``reachable``).

    Returns
    -------
    list of dict
        One row per task (and ``pooled``) and split that has a score.
    """
    rows = []
    for label, key in (("cite", "cite"), ("multi", "multi"), ("pooled", "leaderboard")):
        for split in SPLIT_ORDER:
            score = scores.pooled.get(split) if key == "leaderboard" else scores.by_task.get(key, {}).get(split)
            if score is None:
                continue
            oracle = _lookup(truth.get("oracle"), key, split)
            floor = _lookup(truth.get("mean_profile"), key, split)
            reachable = _lookup(truth.get("reachable"), key, split)
            reference = oracle if reachable is None else reachable
            rows.append(
                {
                    "submission": name,
                    "task": label,
                    "split": split,
                    "score": score,
                    "mean_profile": floor,
                    "oracle": oracle,
                    "reachable": reachable,
                    "headroom": headroom_share(score, floor, reference)
                    if floor is not None and reference is not None
                    else None,
                }
            )
    return rows


def _lookup(table: dict | None, key: str, split: str):
    if not table:
        return None
    value = table.get(key, {}).get(split)
    return None if value is None else float(value)


class TaskScorer:
    """Public and private scores of one task's test predictions; evaluation rows and truth read once.

    Parameters
    ----------
    data_dir, cache_dir
        A prepared dataset with ``truth/``, and its cache.

    Raises
    ------
    InputError
        When the dataset has no truth or its cache is missing or stale.
    """

    def __init__(self, data_dir, cache_dir=None):
        from mmscel.submission import evaluation_rows

        _, solution = load_truth(data_dir)
        self.rows = evaluation_rows(data_dir, cache_dir)
        table = pq.read_table(solution, columns=["target", "split", "cell"])
        self.truth = table.column("target").to_numpy()
        self.cell = table.column("cell").to_numpy()
        self.split = np.asarray(table.column("split").to_numpy(zero_copy_only=False), dtype=object)

    def scores(self, task: str, test: np.ndarray, components: np.ndarray | None, correction=None) -> dict[str, float]:
        """Score one task's test predictions per leaderboard split.

        Parameters
        ----------
        task
            ``"cite"`` or ``"multi"``.
        test
            Test predictions (test cells x targets, or x components).
        components
            Components x genes for coefficient predictions, else None.
        correction
            A blend's cis correction of the test cells, or None.

        Returns
        -------
        dict
            Split -> mean per-cell Pearson, for the splits the task has cells in.
        """
        from mmscel.submission import task_values

        mask = self.rows.is_cite if task == "cite" else ~self.rows.is_cite
        cell, split = self.cell[mask], self.split[mask]
        values = task_values(self.rows, mask, test, components, correction).astype(np.float64)
        per_cell, starts = _per_cell(self.truth[mask], values, cell)
        return {s: float(per_cell[split[starts] == s].mean()) for s in SPLIT_ORDER if (split[starts] == s).any()}


def board(data_dir, cache_dir, oof_root) -> tuple[list[dict], dict]:
    """Every level-1 run and blend with CV, last-day, public and private scores; and truth.json.

    Parameters
    ----------
    data_dir, cache_dir
        A dataset with ``truth/`` (synthetic or imported) and its cache.
    oof_root
        The store (or its root folder).

    Returns
    -------
    tuple
        One row per (task, run or blend) with ``task``, ``name``, ``kind``, ``cv``, ``last_day``,
        ``public``, ``private``; and the dataset's ``truth.json``.

    Raises
    ------
    InputError
        When the dataset has no truth, or a run or blend was made from other data.
    """
    from mmscel.blend.inputs import check_data, target_space
    from mmscel.blend.submit import blend_predictions
    from mmscel.data.cache_check import dataset_tasks
    from mmscel.store import RunStore

    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    truth, _ = load_truth(data_dir)
    scorer = TaskScorer(data_dir, cache_dir)
    tasks = dataset_tasks(data_dir, cache_dir)  # runs of a task the dataset lacks belong to other data: not listed
    runs = [run for run in store.runs() if run.task in tasks]
    for task in sorted({run.task for run in runs}):  # one fingerprint of the current data per task, not per run
        check_data(task, {run.name: run.data_fingerprint for run in runs if run.task == task}, data_dir, cache_dir)
    rows = []
    for run in runs:
        basis = target_space(store, run.target_space).basis
        scores = scorer.scores(run.task, run.test(), None if basis is None else basis.components)
        rows.append(
            {"task": run.task, "name": run.name, "kind": run.learner, "cv": run.cv, "last_day": run.last_day, **scores}
        )
    for blend in store.blends():
        if not set(blend.tasks) <= set(tasks):
            continue  # a blend that includes a task the dataset lacks was made from other data
        predictions, _ = blend_predictions(store, blend.name, data_dir, cache_dir)
        for task, (test, components, correction) in predictions.items():
            info = blend.tasks[task]
            scores = scorer.scores(task, test, components, correction)
            kind = f"blend ({info.method})"
            rows.append(
                {"task": task, "name": blend.name, "kind": kind, "cv": info.nested, "last_day": info.last_day, **scores}
            )
    return rows, truth
