"""Diagnostics of finished runs against the truth of their training cells: per cell, per target, between runs.

Each function loads a task's training targets once and works in row chunks:
a Multiome run's genes are reconstructed from its SVD coefficients a chunk at
a time, and the correlation between runs is computed in component space, so
the full-size gene matrix is never dense.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmscel.blend.inputs import check_data
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.folds import read_fold_labels
from mmscel.store import RunRecord, RunStore, load_array
from mmscel.targets import blend_key, row_chunks, space_from_manifest

CELL_COLUMNS = ["run", "cell_id", "donor", "day", "cell_type", "fold", "score"]
TARGET_CHUNK = 512  # cells rebuilt at a time: ~50 MB of float32 genes at full size, a few float64 copies of it


@dataclass
class TrainTruth:
    """The training targets of one task, in the row order of the runs' predictions."""

    targets: object
    metadata: pd.DataFrame
    target_names: np.ndarray


def select_runs(store: RunStore, task: str, runs: list[str] | None = None) -> list[RunRecord]:
    """The finished runs of ``task`` named in ``runs`` (all of them, best CV first, when None).

    Parameters
    ----------
    store
        The store.
    task
        ``"cite"`` or ``"multi"``.
    runs
        Run names, or None.

    Returns
    -------
    list of RunRecord

    Raises
    ------
    InputError
        When a named run is not finished, or the task has no finished run.
    """
    records = store.runs(task) if runs is None else [store.run(task, name) for name in runs]
    if not records:
        raise InputError(store.root / task, f"no finished {task} run")
    return records


def train_truth(store: RunStore, task: str, records: list[RunRecord], data_dir, cache_dir=None) -> TrainTruth:
    """The training targets the runs were scored on, after checking the runs come from this data.

    Parameters
    ----------
    store
        The store holding the runs.
    task
        Their task.
    records
        The runs.
    data_dir, cache_dir
        The prepared competition folder and its cache.

    Returns
    -------
    TrainTruth

    Raises
    ------
    InputError
        When the data is not prepared, or a run was made from other data.
    """
    check_data(task, {r.name: r.data_fingerprint for r in records}, data_dir, cache_dir)
    train = load(task, "train", data_dir, cache_dir, inputs=False)
    ids = load_array(store.features_dir(task, records[0].feature_fingerprint) / "train_ids.npy").astype(str)
    if not np.array_equal(ids, train.cell_ids.astype(str)):
        raise InputError(store.features_dir(task, records[0].feature_fingerprint), "its cells differ from the data's")
    return TrainTruth(train.targets, train.metadata, train.target_names.astype(str))


def validated_rows(oof: np.ndarray) -> np.ndarray:
    """Rows a fold validated (finite predictions)."""
    return np.flatnonzero(np.isfinite(oof).all(axis=1))


def cell_scores(store: RunStore, task: str, runs=None, data_dir="data", cache_dir=None) -> pd.DataFrame:
    """Per-cell Pearson of each run's out-of-fold predictions, with the cell's donor, day, type and fold.

    Parameters
    ----------
    store, task, runs
        As in :func:`select_runs`.
    data_dir, cache_dir
        The prepared competition folder and its cache.

    Returns
    -------
    pandas.DataFrame
        One row per run and validated cell: ``run``, ``cell_id``, ``donor``, ``day``, ``cell_type``,
        ``fold``, ``score``.
    """
    records = select_runs(store, task, runs)
    truth = train_truth(store, task, records, data_dir, cache_dir)
    frames = []
    for record in records:
        oof = record.oof()
        rows = validated_rows(oof)
        space = space_from_manifest(record.target_space, store.resolve)
        scores = space.score(oof[rows], truth.targets, rows)
        folds = read_fold_labels(store, record.manifest["fold_file"])
        cells = truth.metadata.iloc[rows]
        frame = pd.DataFrame(
            {
                "run": record.name,
                "cell_id": cells["cell_id"].to_numpy(),
                "donor": cells["donor"].astype(str).to_numpy(),
                "day": cells["day"].to_numpy(),
                "cell_type": cells["cell_type"].astype(str).to_numpy() if "cell_type" in cells else "",
                "fold": folds[rows],
                "score": scores,
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[CELL_COLUMNS]


class ColumnMoments:
    """Running sums of two matrices' columns, for the Pearson correlation of each column pair.

    The sums are taken around the first chunk's column means, which keeps them
    accurate in float64 whatever the scale of the values.
    """

    def __init__(self):
        self.n = 0
        self.shift_true = self.shift_pred = None
        self.sums: dict[str, np.ndarray] = {}

    def add(self, truth: np.ndarray, predictions: np.ndarray) -> None:
        """Add the rows of one chunk (cells x targets each)."""
        t, p = np.asarray(truth, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
        if self.shift_true is None:
            self.shift_true, self.shift_pred = t.mean(axis=0), p.mean(axis=0)
        t, p = t - self.shift_true, p - self.shift_pred
        for key, value in (("t", t), ("p", p), ("tt", t * t), ("pp", p * p), ("tp", t * p)):
            self.sums[key] = self.sums.get(key, 0.0) + value.sum(axis=0)
        self.n += len(t)

    def pearson(self) -> np.ndarray:
        """The correlation of each column pair; NaN where either column is constant."""
        s, n = self.sums, self.n
        covariance = s["tp"] - s["t"] * s["p"] / n
        variance_t = s["tt"] - s["t"] ** 2 / n
        variance_p = s["pp"] - s["p"] ** 2 / n
        denominator = np.sqrt(np.maximum(variance_t, 0.0) * np.maximum(variance_p, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 1e-12 * max(1, n), covariance / denominator, np.nan)


def target_scores(
    store: RunStore, task: str, runs=None, data_dir="data", cache_dir=None, chunk: int = TARGET_CHUNK
) -> pd.DataFrame:
    """Pearson across the validated cells, target by target (proteins, or genes rebuilt chunk by chunk).

    Parameters
    ----------
    store, task, runs
        As in :func:`select_runs`.
    data_dir, cache_dir
        The prepared competition folder and its cache.
    chunk
        Cells reconstructed at a time.

    Returns
    -------
    pandas.DataFrame
        Targets x runs; NaN for a target constant over the validated cells.
    """
    records = select_runs(store, task, runs)
    truth = train_truth(store, task, records, data_dir, cache_dir)
    columns = {}
    for record in records:
        oof = record.oof()
        rows = validated_rows(oof)
        space = space_from_manifest(record.target_space, store.resolve)
        moments = ColumnMoments()
        for start, part in row_chunks(truth.targets, rows, chunk, dense=True):
            moments.add(part, space.reconstruct(oof[rows[start : start + len(part)]]))
        columns[record.name] = moments.pearson()
    return pd.DataFrame(columns, index=pd.Index(truth.target_names, name="target"))


def oof_correlation(store: RunStore, task: str, runs=None, data_dir="data", cache_dir=None) -> pd.DataFrame:
    """Mean over cells of the per-cell Pearson between two runs' out-of-fold predictions.

    Computed exactly as level-2 sees the runs (in component space for the
    Multiome gene SVD). Runs must predict the same target space; by default
    the task's runs that share the best run's are taken, and the others are
    listed in ``frame.attrs["skipped"]``.

    Parameters
    ----------
    store, task, runs
        As in :func:`select_runs`.
    data_dir, cache_dir
        The prepared competition folder and its cache.

    Returns
    -------
    pandas.DataFrame
        Runs x runs (1 on the diagonal).

    Raises
    ------
    InputError
        When runs named in ``runs`` predict different target spaces.
    """
    from mmscel.blend.run import cell_statistics

    records = select_runs(store, task, runs)
    key = blend_key(records[0].target_space)
    kept = [r for r in records if blend_key(r.target_space) == key]
    skipped = [r.name for r in records if blend_key(r.target_space) != key]
    if skipped and runs is not None:
        raise InputError(f"runs {records[0].name} and {skipped[0]}", "predict different target spaces")
    truth = train_truth(store, task, kept, data_dir, cache_dir)
    oofs = [r.oof() for r in kept]
    rows = np.flatnonzero(np.all([np.isfinite(o).all(axis=1) for o in oofs], axis=0))
    basis = space_from_manifest(kept[0].target_space, store.resolve).basis
    stats = cell_statistics([o[rows] for o in oofs], truth.targets[rows], basis)
    names = [r.name for r in kept]
    frame = pd.DataFrame(stats.gram.mean(axis=0), index=pd.Index(names, name="run"), columns=names)
    frame.attrs["skipped"] = skipped
    return frame


def blend_weights(store: RunStore) -> pd.DataFrame:
    """The weight of every run in every blend of the store.

    Parameters
    ----------
    store
        The store.

    Returns
    -------
    pandas.DataFrame
        ``blend``, ``task``, ``method``, ``run``, ``weight``; empty when the store has no blend.
    """
    rows = [
        {"blend": blend.name, "task": task, "method": info.method, "run": run, "weight": weight}
        for blend in store.blends()
        for task, info in blend.tasks.items()
        for run, weight in zip(info.runs, info.weights)
    ]
    return pd.DataFrame(rows, columns=["blend", "task", "method", "run", "weight"])


def study_journals(store: RunStore) -> list[Path]:
    """The journal files of the store's tuning studies, oldest change first."""
    from mmscel.tune.storage import JOURNAL

    return sorted((store.root / "tune").glob(f"*/{JOURNAL}"), key=lambda path: path.stat().st_mtime)


def load_study(store: RunStore, name: str | None = None):
    """A tuning study kept in the store's journal files, read without writing to it.

    Parameters
    ----------
    store
        The store.
    name
        The study (a folder under ``tune/``); None: the study changed last.

    Returns
    -------
    optuna.Study

    Raises
    ------
    InputError
        When there is no such study, or its journal is damaged.
    """
    from mmscel.tune.journal import journal_study
    from mmscel.tune.storage import JOURNAL

    journals = [store.study_dir(name) / JOURNAL] if name else study_journals(store)
    if not journals or not journals[-1].exists():
        raise InputError(store.root / "tune", f"no tuning study {name or ''}".rstrip() + " here (run mmscel tune)")
    return journal_study(journals[-1], journals[-1].parent.name, read_only=True)


def fold_table(store: RunStore, task: str) -> pd.DataFrame:
    """Each run's folds as its manifest records them: cells, score, the fold's mean-profile floor, seconds.

    Parameters
    ----------
    store
        The store.
    task
        ``"cite"`` or ``"multi"``.

    Returns
    -------
    pandas.DataFrame
        ``run``, ``fold``, ``n_valid``, ``score``, ``mean_profile``, ``seconds``; the holdouts
        (``last_day``) included, each run's folds in its manifest's order.
    """
    rows = [
        {
            "run": record.name,
            "fold": name,
            "n_valid": fold.get("n_valid"),
            "score": fold.get("score"),
            "mean_profile": fold.get("mean_profile"),
            "seconds": fold.get("seconds"),
        }
        for record in store.runs(task)
        for name, fold in record.folds.items()
    ]
    return pd.DataFrame(rows, columns=["run", "fold", "n_valid", "score", "mean_profile", "seconds"])
