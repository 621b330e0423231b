"""Typed records of what the store holds: finished level-1 runs and blends.

A record is read from a manifest; its arrays are loaded on request through the
store, which alone knows where they live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmscel.store.io import load_array

if TYPE_CHECKING:
    from mmscel.store.run_store import RunStore


@dataclass(frozen=True)
class RunRecord:
    """A finished level-1 run: its scores, fingerprints and target space, read from its manifest."""

    task: str
    name: str
    learner: str
    fold_scheme: str
    cv: float | None
    cv_mean_profile: float | None
    last_day: float | None
    last_day_mean_profile: float | None
    validated_rows: int
    wall_seconds: float
    data_fingerprint: str
    feature_fingerprint: str
    fold_fingerprint: str
    config_hash: str
    target_space: dict
    folds: dict[str, dict]
    path: Path
    store: RunStore = field(repr=False, compare=False)
    manifest: dict = field(repr=False, compare=False)

    @classmethod
    def from_manifest(cls, manifest: dict, path: Path, store: RunStore) -> RunRecord:
        """The record of the run whose folder is ``path``.

        Parameters
        ----------
        manifest
            The run's ``manifest.json`` content.
        path
            The run's folder, where its arrays are.
        store
            The store holding the run (it resolves the files the manifest names).

        Returns
        -------
        RunRecord

        Raises
        ------
        KeyError
            When the manifest lacks a key every finished run records.
        """
        keys = ("cv", "cv_mean_profile", "last_day", "last_day_mean_profile")
        return cls(
            task=manifest["task"],
            name=manifest["run"],
            learner=manifest["learner"],
            fold_scheme=manifest["fold_scheme"],
            **{key: manifest.get(key) for key in keys},
            validated_rows=int(manifest.get("validated_rows", 0)),
            wall_seconds=float(manifest.get("wall_seconds", 0.0)),
            data_fingerprint=manifest["data_fingerprint"],
            feature_fingerprint=manifest["feature_fingerprint"],
            fold_fingerprint=manifest["fold_fingerprint"],
            config_hash=manifest["config_hash"],
            target_space=manifest["target_space"],
            folds=manifest.get("folds", {}),
            path=Path(path),
            store=store,
            manifest=manifest,
        )

    @property
    def fingerprints(self) -> dict[str, str]:
        """The data, fold and config fingerprints that decide whether runs belong together."""
        return {
            "data_fingerprint": self.data_fingerprint,
            "fold_fingerprint": self.fold_fingerprint,
            "config_hash": self.config_hash,
        }

    def oof(self) -> np.ndarray:
        """Out-of-fold predictions (train cells x prediction space; NaN where never validated).

        Raises
        ------
        InputError
            When ``oof.npy`` is missing or unreadable.
        """
        return load_array(self.path / "oof.npy")

    def test(self) -> np.ndarray:
        """Test predictions (test cells x prediction space).

        Raises
        ------
        InputError
            When the run's ``test.npy`` cannot be read (missing or corrupt).
        """
        return load_array(self.path / "test.npy")

    def last_day_predictions(self) -> np.ndarray | None:
        """Predictions of the last-day holdout (its validation cells), or None when the run has none.

        Raises
        ------
        InputError
            When the holdout's predictions exist but cannot be read.
        """
        return self.store.holdout_predictions(self)

    def fold_file(self) -> Path:
        """The shared fold file the run used.

        Raises
        ------
        InputError
            When the manifest names it outside the store.
        """
        return self.store.resolve(self.manifest["fold_file"])


@dataclass(frozen=True)
class BlendTask:
    """One task of a blend: its runs, weights and honest scores."""

    runs: list[str]
    weights: list[float]
    method: str
    in_sample: float
    nested: float
    last_day: float | None
    best_single: dict
    single_runs: dict[str, float]
    flag_nested_below_best_single: bool
    n_cells: int
    target_space: dict
    fingerprints: dict[str, dict]
    test_file: str
    test_shape: list[int]
    cis: dict | None = None  # the Multiome cis correction's settings and scores (and its file when applied)

    @classmethod
    def from_manifest(cls, info: dict) -> BlendTask:
        """The task record from its entry in a blend manifest.

        Parameters
        ----------
        info
            The entry of one task under the manifest's ``tasks``; keys beyond the fields are ignored.

        Returns
        -------
        BlendTask

        Raises
        ------
        KeyError
            When a field is missing from ``info``.
        """
        return cls(**{name: info[name] for name in cls.__dataclass_fields__ if name != "cis"}, cis=info.get("cis"))

    def as_dict(self) -> dict[str, Any]:
        """The manifest entry of this task."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class BlendRecord:
    """A finished level-2 blend: per task, the runs, weights and scores."""

    name: str
    method: str
    tasks: dict[str, BlendTask]
    pooled: dict[str, float]
    wall_seconds: float
    path: Path
    manifest: dict = field(repr=False, compare=False)

    @classmethod
    def from_manifest(cls, manifest: dict, path: Path) -> BlendRecord:
        """The record of the blend whose folder is ``path``.

        Parameters
        ----------
        manifest
            The blend's ``manifest.json`` content (its ``config``, its ``tasks`` and their scores).
        path
            The blend's folder, which holds its test files.

        Returns
        -------
        BlendRecord

        Raises
        ------
        KeyError
            When the manifest or one of its task entries lacks a required key.
        """
        return cls(
            name=manifest["name"],
            method=manifest["config"]["method"],
            tasks={task: BlendTask.from_manifest(info) for task, info in manifest["tasks"].items()},
            pooled=manifest.get("pooled", {}),
            wall_seconds=float(manifest.get("wall_seconds", 0.0)),
            path=Path(path),
            manifest=manifest,
        )

    def test(self, task: str) -> np.ndarray:
        """The blended test predictions of ``task`` (its runs' prediction space).

        Parameters
        ----------
        task
            A task the blend covers.

        Returns
        -------
        numpy.ndarray
            Test cells x prediction space.

        Raises
        ------
        KeyError
            When the blend does not cover ``task``.
        InputError
            When its test file is missing or unreadable.
        """
        return load_array(self.path / self.tasks[task].test_file)

    def cis_maps(self, task: str) -> tuple[list, list[int]] | None:
        """The applied cis correction of ``task``: its map fitted on every cell, then one per fold, and the folds.

        Parameters
        ----------
        task
            A task the blend covers.

        Returns
        -------
        tuple or None
            The :class:`~mmscel.blend.cis.CisMap` list and the fold labels of its maps after the first;
            None when the task has no applied correction.

        Raises
        ------
        InputError
            When its file is missing or unreadable.
        """
        from mmscel.blend.cis import CisMap

        info = self.tasks[task].cis
        if not info or not info.get("applied"):
            return None
        packed = load_array(self.path / info["file"])
        return [CisMap.from_array(each) for each in packed], list(info["folds"])
