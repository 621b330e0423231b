"""``RunStore``: the one object through which every stage reads and writes ``oof/``.

It adds to the layout (:mod:`mmscel.store.layout`) and the blends
(:mod:`mmscel.store.blend_shelf`) what level-1 needs: a lock per run, fold
checkpoints, and finished runs read back as :class:`~mmscel.store.records.RunRecord`.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import math
import os
import socket

from mmscel.errors import InputError
from mmscel.fsutil import sweep_temporaries
from mmscel.store.blend_shelf import BlendShelf
from mmscel.store.checkpoint import RunCheckpoints
from mmscel.store.io import load_array, read_manifest, save_array, write_manifest
from mmscel.store.layout import TASKS, check_name
from mmscel.store.records import RunRecord

LAST_DAY = "last_day"


class RunStore(BlendShelf):
    """Everything level-1, level-2 and submissions write, under one root folder.

    Parameters
    ----------
    root
        The store's folder (``oof/`` by default on the command line).
    """

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- level-1 runs ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, task: str, name: str, wait: bool = True):
        """Hold the lock of run ``task/name`` for the duration of the ``with`` block.

        A second process asking for the same run waits until the first ends
        (then finds its result and reuses it) or, with ``wait=False``, is
        refused with the holder's pid and host. The lock is an advisory
        ``flock``, released by the system when the holder dies, even by ``kill -9``.

        Parameters
        ----------
        task, name
            The run to lock; the lock file is ``<task>/.<name>.lock`` under the root.
        wait
            Wait for another holder to end instead of raising.

        Yields
        ------
        None
            While the lock is held.

        Raises
        ------
        InputError
            When ``wait`` is false and another process holds the lock, or ``task`` or ``name`` is bad.
        """
        path = self.root / self._task(task) / f".{check_name(name, 'run name')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise InputError(path, f"run {task}/{name} is running ({path.read_text().strip()})") from None
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            sweep_temporaries(self.run_dir(task, name))  # what a killed holder left half-written
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def checkpoints(self, task: str, name: str) -> RunCheckpoints:
        """The fold checkpoints of run ``task/name``.

        Parameters
        ----------
        task, name
            The run whose ``folds/`` folder they live in.

        Returns
        -------
        RunCheckpoints

        Raises
        ------
        InputError
            For an unknown task or a run name that is not plain.
        """
        return RunCheckpoints(self.run_dir(task, name))

    def run_manifest(self, task: str, name: str) -> dict | None:
        """The manifest of run ``task/name`` (finished or not), or None.

        Parameters
        ----------
        task, name
            The run whose ``manifest.json`` to read.

        Returns
        -------
        dict or None
            None when the run has written no manifest.

        Raises
        ------
        InputError
            When the manifest is corrupt, or the task or name is bad.
        """
        return read_manifest(self.run_dir(task, name) / "manifest.json")

    def run_started(self, task: str, name: str) -> dict | None:
        """What a run that has started records first (config hash, fingerprints), or None.

        Parameters
        ----------
        task, name
            The run to look up; its ``run.json`` is read.

        Returns
        -------
        dict or None
            The facts given to :meth:`mark_started`; None when the run never started.

        Raises
        ------
        InputError
            When ``run.json`` is corrupt, or ``task`` or ``name`` is bad.
        """
        return read_manifest(self.run_dir(task, name) / "run.json")

    def mark_started(self, task: str, name: str, facts: dict) -> None:
        """Record that run ``task/name`` started with ``facts`` (its config hash and fingerprints).

        Parameters
        ----------
        task, name
            The run that starts.
        facts
            What later runs of the same name are checked against, written to ``run.json``.

        Raises
        ------
        InputError
            For an unknown task or a name that is not plain.
        """
        write_manifest(self.run_dir(task, name) / "run.json", facts)

    def write_run(self, task: str, name: str, arrays: dict, manifest: dict) -> RunRecord:
        """Write a finished run's arrays, then its manifest (last: it marks the run finished).

        Parameters
        ----------
        task, name
            The finished run.
        arrays
            Arrays by stem (``oof``, ``test``), each written to ``<stem>.npy`` in the run's folder.
        manifest
            The run's manifest, with the keys :meth:`RunRecord.from_manifest` reads.

        Returns
        -------
        RunRecord
            The record of the written run.
        """
        folder = self.run_dir(task, name)
        for stem, array in arrays.items():
            save_array(folder / f"{stem}.npy", array)
        write_manifest(folder / "manifest.json", manifest)
        return RunRecord.from_manifest(manifest, folder, self)

    def remove_run(self, task: str, name: str) -> None:
        """Delete run ``task/name`` and everything in its folder.

        Parameters
        ----------
        task, name
            The run to delete.

        Raises
        ------
        InputError
            When the run's folder is not inside the store's own sub-folders (a link out of the store).
        FileNotFoundError
            When the run has no folder.
        """
        self._remove(self.run_dir(task, name))

    def runs(self, task: str | None = None) -> list[RunRecord]:
        """Finished runs (of ``task``, or all), best CV first within each task.

        Parameters
        ----------
        task
            The task to list, or None for every task.

        Returns
        -------
        list of RunRecord
            Sorted by task, then by CV, best first; runs without a CV score last.

        Raises
        ------
        InputError
            When a manifest is corrupt.
        """
        records = []
        for task_name in [task] if task else TASKS:
            for path in sorted((self.root / task_name).glob("*/manifest.json")):
                manifest = read_manifest(path)
                if manifest and manifest.get("completed"):
                    records.append(RunRecord.from_manifest(manifest, path.parent, self))
        return sorted(records, key=lambda r: (r.task, -_sortable(r.cv)))

    def run(self, task: str, name: str) -> RunRecord:
        """The finished run ``task/name``.

        Parameters
        ----------
        task, name
            Which run to read: its folder is ``<task>/<name>`` under the root.

        Returns
        -------
        RunRecord
            Read from the run's manifest.

        Raises
        ------
        InputError
            When there is no finished run of that name.
        """
        folder = self.run_dir(task, name)
        manifest = read_manifest(folder / "manifest.json")
        if not manifest or not manifest.get("completed"):
            raise InputError(folder, "not a finished level-1 run")
        return RunRecord.from_manifest(manifest, folder, self)

    def select_runs(self, task: str, patterns: list[str]) -> list[str]:
        """Names of finished runs of ``task`` matching any of ``patterns`` (names or globs), sorted.

        Parameters
        ----------
        task
            The task whose runs to match.
        patterns
            Run names or ``fnmatch`` globs (case-sensitive).

        Returns
        -------
        list of str

        Raises
        ------
        InputError
            When no finished run matches.
        """
        folder = self.root / self._task(task)
        available = sorted(p.parent.name for p in folder.glob("*/manifest.json")) if folder.exists() else []
        chosen = sorted({name for name in available for pattern in patterns if fnmatch.fnmatchcase(name, pattern)})
        if not chosen:
            listed = ", ".join(available) or "none"
            raise InputError(folder, f"no finished {task} run matches {patterns} (available: {listed})")
        return chosen

    def holdout_predictions(self, run: RunRecord, name: str = LAST_DAY):
        """Predictions of a run's holdout fold ``name`` (the last-day holdout by default), or None.

        Parameters
        ----------
        run
            The run's record.
        name
            The holdout fold's checkpoint name.

        Returns
        -------
        numpy.ndarray or None
            The fold's validation predictions; None when the fold has none stored.

        Raises
        ------
        InputError
            When the stored predictions cannot be read.
        """
        path = self.checkpoints(run.task, run.name).fold(name).folder / "valid.npy"
        return load_array(path) if path.exists() else None


def _sortable(score) -> float:
    """A score for sorting: missing or NaN scores rank last."""
    return float(score) if score is not None and math.isfinite(score) else -math.inf
