"""The layout of the store: where each artifact lives under the root, and which names and deletions are allowed.

::

    oof/
      features/<task>-<fingerprint>/   feature matrices and the Multiome target SVD
      folds/<task>_<scheme>.parquet    shared fold files (+ .json manifest)
      <task>/<run>/                    level-1 runs: oof.npy, test.npy, manifest.json, folds/fold_<k>/
      blend/<name>/                    level-2 blends: manifest.json, weights.json, test_<task>-*.npy, studies
      submissions/<name>.csv.gz        Kaggle submissions and their records
      tune/<study>/                    tuning studies and their trials
      mlflow/                          MLflow's local store, with --mlflow or tracking: mlflow

Names of runs, blends, studies and submissions are plain identifiers, and the
store only ever removes folders inside its own sub-folders.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from mmscel.data.layout import TASKS
from mmscel.errors import InputError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
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


class StoreLayout:
    """The paths of a store's artifacts under ``root``; the base of :class:`~mmscel.store.RunStore`.

    Parameters
    ----------
    root
        The store's folder.
    """

    def __init__(self, root: str | Path = "oof"):
        self.root = Path(root)

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
