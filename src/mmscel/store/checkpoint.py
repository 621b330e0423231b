"""Per-fold checkpoints of a level-1 run: predictions, native model files and a completion marker.

A fold counts as done only once ``done.json`` exists; it is written last, so a
run killed at any moment redoes at most one fold.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from mmscel.cv import FoldResult
from mmscel.errors import InputError
from mmscel.fsutil import replace_dir, write_json
from mmscel.store.io import load_array, save_array

PREDICTIONS = ("valid", "test")


class FoldCheckpoint:
    """The checkpoint folder of one fold of one run.

    Parameters
    ----------
    run_dir
        The run's folder.
    fold
        The fold's name (``"0"``, ``"last_day"``, ``"refit"``, ...).
    """

    def __init__(self, run_dir: Path, fold: str):
        self.folder = Path(run_dir) / "folds" / f"fold_{fold}"

    @property
    def done(self) -> bool:
        """Whether the fold finished: its marker exists and reads (a damaged one means: redo the fold)."""
        return self._info() is not None

    def model_dir(self) -> Path:
        """Folder of the fold's native model files."""
        return self.folder / "model"

    def save_model(self, learner, space) -> None:
        """Write the fitted learner (and a fold-fitted target space) whole, then move it into place.

        Parameters
        ----------
        learner
            The fold's fitted learner; its ``save`` writes its native model files.
        space
            The fold's target space, saved beside the model only when it is fitted per fold (or None).
        """
        model_dir = self.model_dir()
        staging = model_dir.with_name(f".{model_dir.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        learner.save(staging)
        if space is not None and space.per_fold:
            space.save(staging)
        replace_dir(staging, model_dir)

    def save(self, predictions: dict[str, np.ndarray], info: dict) -> None:
        """Store this fold's prediction arrays and facts, then mark it done.

        Parameters
        ----------
        predictions
            Arrays by name, each written to ``<name>.npy``.
        info
            The fold's facts (scores, timings), written as ``done.json``, the completion marker.

        Raises
        ------
        TypeError
            When ``info`` holds a value JSON cannot hold (the fold stays unfinished).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, array in predictions.items():
            save_array(self.folder / f"{name}.npy", array)
        write_json(self.folder / "done.json", info)

    def load(self, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
        """The arrays and facts stored by :meth:`save`.

        Parameters
        ----------
        names
            The arrays to read (``<name>.npy`` each).

        Returns
        -------
        tuple of (dict, dict)
            The arrays by name, and the facts from ``done.json``.

        Raises
        ------
        InputError
            When the fold is not done, its marker is damaged, or an array is missing or unreadable.
        """
        info = self._info()
        if info is None:
            raise InputError(self.folder / "done.json", "missing or damaged; run again to redo the fold")
        return {name: load_array(self.folder / f"{name}.npy") for name in names}, info

    def _info(self) -> dict | None:
        try:
            info = json.loads((self.folder / "done.json").read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None


class RunCheckpoints:
    """The fold checkpoints of one run, as :func:`mmscel.cv.cross_validate` uses them.

    Parameters
    ----------
    run_dir
        The run's folder.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def fold(self, name: str) -> FoldCheckpoint:
        """The checkpoint of one fold of this run.

        Parameters
        ----------
        name
            The fold's name, as in :class:`FoldCheckpoint`.

        Returns
        -------
        FoldCheckpoint
        """
        return FoldCheckpoint(self.run_dir, name)

    def load(self, name: str) -> FoldResult | None:
        """The stored result of fold ``name``, or None when it has not finished.

        Parameters
        ----------
        name
            Which fold's result to read.

        Returns
        -------
        FoldResult or None
            Its validation and test predictions and its facts.

        Raises
        ------
        InputError
            When the fold is marked done but a prediction file is missing or unreadable.
        """
        checkpoint = self.fold(name)
        if not checkpoint.done:
            return None
        arrays, info = checkpoint.load(PREDICTIONS)
        return FoldResult(name, arrays["valid"], arrays["test"], info)

    def save(self, result: FoldResult, learner, space) -> None:
        """Store a finished fold: model files first, predictions next, the marker last.

        Parameters
        ----------
        result
            The fold's predictions (stored as float32) and facts; its ``name`` picks the folder.
        learner
            The learner fitted on the fold.
        space
            The target space of the fold, or None.
        """
        checkpoint = self.fold(result.name)
        checkpoint.save_model(learner, space)
        arrays = {"valid": result.valid.astype(np.float32), "test": result.test.astype(np.float32)}
        checkpoint.save(arrays, result.info)
