"""``RunStore``: the one place that knows the layout of ``oof/``.

::

    oof/
      features/<task>-<fingerprint>/   feature matrices and the Multiome target SVD
      folds/<task>_<scheme>.parquet    shared fold files (+ .json manifest)
      <task>/<run>/                    level-1 runs: oof.npy, test.npy, manifest.json, folds/fold_<k>/
      blend/<name>/                    level-2 blends: manifest.json, weights.json, test_<task>-*.npy, studies
      submissions/<name>.csv.gz        Kaggle submissions and their records
      tune/<study>/                    tuning studies and their trials

Names of runs, blends, studies and submissions are plain identifiers, and the
store only ever removes folders inside its own sub-folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import math
import os
import re
import shutil
import socket
from pathlib import Path

from mmscel.data.layout import TASKS
from mmscel.errors import InputError
from mmscel.fsutil import sweep_temporaries
from mmscel.store.checkpoint import RunCheckpoints
from mmscel.store.io import array_digest, load_array, read_manifest, save_array, write_manifest
from mmscel.store.records import BlendRecord, RunRecord

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LAST_DAY = "last_day"
_OWN_FOLDERS = (*TASKS, "features", "folds", "blend", "submissions", "tune")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` when it is a plain identifier safe to use as a folder name.

    Parameters
    ----------
    name
        A run, blend, study or submission name.
    what
        What the name names, for the message (``"run name"``, ``"blend name"``, ...).

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    InputError
        When ``name`` is empty, holds a path separator or ``..``, or starts with a dot or a dash.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InputError(
            what,
            f"{name!r} is not a plain name: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no '..')",
        )
    return name


class RunStore:
    """Everything level-1, level-2 and submissions write, under one root folder.

    Parameters
    ----------
    root
        The store's folder (``oof/`` by default on the command line).
    """

    def __init__(self, root: str | Path = "oof"):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------------------

    def features_dir(self, task: str, fingerprint: str) -> Path:
        """Folder of the feature set of ``task`` with ``fingerprint``.

        Parameters
        ----------
        task
            The task the features are of.
        fingerprint
            The feature set's fingerprint (data, feature config, seed).

        Returns
        -------
        Path
            ``features/<task>-<fingerprint>`` under the root.
        """
        return self.root / "features" / f"{task}-{fingerprint}"

    def fold_file(self, task: str, scheme: str) -> Path:
        """The shared fold file of ``task`` and ``scheme`` (its manifest: the same name with ``.json``).

        Parameters
        ----------
        task
            The task whose training cells the file splits.
        scheme
            A fold scheme's name.

        Returns
        -------
        Path
            ``folds/<task>_<scheme>.parquet`` under the root.
        """
        return self.root / "folds" / f"{task}_{scheme}.parquet"

    def run_dir(self, task: str, name: str) -> Path:
        """Folder of the level-1 run ``task/name``.

        Parameters
        ----------
        task
            ``"cite"`` or ``"multi"``.
        name
            The run's name, a plain identifier.

        Returns
        -------
        Path
            ``<task>/<name>`` under the root.

        Raises
        ------
        InputError
            When ``task`` is unknown or ``name`` is not a plain name.
        """
        return self.root / self._task(task) / check_name(name, "run name")

    def blend_dir(self, name: str) -> Path:
        """Folder of the blend ``name``.

        Parameters
        ----------
        name
            A plain blend name.

        Returns
        -------
        Path
            ``blend/<name>`` under the root.

        Raises
        ------
        InputError
            When ``name`` is not a plain identifier.
        """
        return self.root / "blend" / check_name(name, "blend name")

    def blend_study(self, name: str, task: str, key: str) -> Path:
        """The Optuna journal of the weight search of blend ``name`` on ``task`` for inputs with digest ``key``.

        Parameters
        ----------
        name
            The blend.
        task
            One of the blend's tasks.
        key
            Digest of what the search depends on (its runs and settings); other inputs get another journal.

        Returns
        -------
        Path
            ``study-<task>-<key>.journal`` in the blend's folder.

        Raises
        ------
        InputError
            For an unknown task or a blend name that is not plain.
        """
        return self.blend_dir(name) / f"study-{self._task(task)}-{key}.journal"

    def submission_path(self, label: str) -> Path:
        """Default path of the submission named ``label`` (plain names, joined by ``+`` for single runs).

        Parameters
        ----------
        label
            A blend's name, or the run names of a submission of single runs joined by ``+``.

        Returns
        -------
        Path
            ``submissions/<label>.csv.gz`` under the root.

        Raises
        ------
        InputError
            When a part of ``label`` is not a plain name.
        """
        for part in label.split("+"):
            check_name(part, "submission name")
        return self.root / "submissions" / f"{label}.csv.gz"

    def study_dir(self, name: str) -> Path:
        """Folder of the tuning study ``name``.

        Parameters
        ----------
        name
            The study's plain name.

        Returns
        -------
        Path
            ``tune/<name>`` under the root.

        Raises
        ------
        InputError
            If the study name is not plain.
        """
        return self.root / "tune" / check_name(name, "study name")

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, as manifests name files (so that a store can be moved).

        Parameters
        ----------
        path
            A file inside the store, given with the root as its prefix.

        Returns
        -------
        str

        Raises
        ------
        ValueError
            When ``path`` does not start with the root.
        """
        return str(Path(path).relative_to(self.root))

    def resolve(self, stored: str) -> Path:
        """The path of a file a manifest names: under the root, else under the working folder.

        The working folder is used only when the file exists there and not under the root.

        Parameters
        ----------
        stored
            The name as the manifest holds it.

        Returns
        -------
        Path

        Raises
        ------
        InputError
            When the name is absolute or climbs out of the store with ``..``.
        """
        if Path(stored).is_absolute() or ".." in Path(stored).parts:
            raise InputError(stored, "a manifest names a file outside the store")
        inside = self.root / stored
        if inside.exists() or not Path(stored).exists():
            return inside
        return Path(stored)

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

    # -- blends --------------------------------------------------------------------------------------------

    def write_blend_test(self, name: str, task: str, test) -> str:
        """Write a blend's test predictions of ``task`` under a name derived from their content; return it.

        Named by content, a blend that fails half-way never pairs an old manifest with a new test file.

        Parameters
        ----------
        name
            The blend being written.
        task
            The task of the predictions.
        test
            Blended test predictions (test cells x prediction space).

        Returns
        -------
        str
            The file's name inside the blend's folder, for the manifest.

        Raises
        ------
        InputError
            For an unknown task or a blend name that is not a plain name.
        """
        filename = f"test_{self._task(task)}-{array_digest(test)}.npy"
        save_array(self.blend_dir(name) / filename, test)
        return filename

    def write_blend(self, name: str, manifest: dict) -> BlendRecord:
        """Write a blend's weights and manifest, then delete its test files the manifest does not name.

        Parameters
        ----------
        name
            The blend's name.
        manifest
            The blend's manifest; its ``tasks`` give the runs, weights and test file of each task.

        Returns
        -------
        BlendRecord
            The record of the written blend.
        """
        folder = self.blend_dir(name)
        tasks = manifest["tasks"]
        write_manifest(folder / "weights.json", {task: dict(zip(t["runs"], t["weights"])) for task, t in tasks.items()})
        write_manifest(folder / "manifest.json", manifest)
        current = {t["test_file"] for t in tasks.values()}
        for stale in folder.glob("test_*.npy"):
            if stale.name not in current:
                stale.unlink()
        return BlendRecord.from_manifest(manifest, folder)

    def blends(self) -> list[BlendRecord]:
        """Every finished blend, by name.

        Raises
        ------
        InputError
            When a blend's manifest is corrupt.
        """
        records = []
        for path in sorted((self.root / "blend").glob("*/manifest.json")):
            manifest = read_manifest(path)  # a corrupt manifest is a one-line InputError
            records.append(BlendRecord.from_manifest(manifest, path.parent))
        return records

    def blend(self, name: str) -> BlendRecord:
        """The finished blend ``name``.

        Parameters
        ----------
        name
            Which blend to read (a folder under ``blend/``).

        Returns
        -------
        BlendRecord

        Raises
        ------
        InputError
            When there is no such blend.
        """
        folder = self.blend_dir(name)
        manifest = read_manifest(folder / "manifest.json")
        if manifest is None:
            raise InputError(folder, "no such blend (manifest.json missing)")
        return BlendRecord.from_manifest(manifest, folder)

    def latest_blend(self) -> str:
        """Name of the most recently written blend.

        Raises
        ------
        InputError
            When the store holds no blend.
        """
        manifests = sorted((self.root / "blend").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
        if not manifests:
            raise InputError(
                self.root / "blend", "no blend yet; run mmscel level2 configs/blend.yaml first (or pass --run)"
            )
        return manifests[-1].parent.name

    # -- internals -----------------------------------------------------------------------------------------

    def _task(self, task: str) -> str:
        if task not in TASKS:
            raise InputError("task", f"unknown task {task!r} (allowed: {', '.join(TASKS)})")
        return task

    def _remove(self, folder: Path) -> None:
        """Delete ``folder``, which must lie two levels or more inside one of the store's own sub-folders."""
        root, target = self.root.resolve(), Path(folder).resolve()
        parts = target.relative_to(root).parts if target.is_relative_to(root) else ()
        if len(parts) < 2 or parts[0] not in _OWN_FOLDERS:
            raise InputError(folder, f"refusing to delete a folder that is not an artifact inside the store {root}")
        shutil.rmtree(target)


def _sortable(score) -> float:
    """A score for sorting: missing or NaN scores rank last."""
    return float(score) if score is not None and math.isfinite(score) else -math.inf
