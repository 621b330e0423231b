"""Select level-1 runs for a blend, load their predictions, and refuse any that do not belong together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmscel.errors import InputError
from mmscel.store import RunRecord, RunStore, data_fingerprint
from mmscel.targets import TargetSpace, blend_key, space_from_manifest

MUST_MATCH = ("data_fingerprint", "fold_fingerprint")


@dataclass
class RunOutputs:
    """One finished level-1 run and its predictions.

    ``record`` is the run in the store, ``oof`` and ``test`` its out-of-fold and
    test predictions, ``last_day`` its last-day holdout's predictions (None when
    the run has no holdout).
    """

    record: RunRecord
    oof: np.ndarray
    test: np.ndarray
    last_day: np.ndarray | None

    @property
    def name(self) -> str:
        """The run's name."""
        return self.record.name


def load_runs(store: RunStore, task: str, names: list[str]) -> list[RunOutputs]:
    """Load the runs ``task/<name>`` and check they share data, folds and target space.

    Parameters
    ----------
    store
        The run store.
    task
        ``"cite"`` or ``"multi"``.
    names
        Run names within the task.

    Returns
    -------
    list of RunOutputs
        The runs in the order of ``names``.

    Raises
    ------
    InputError
        When a run is not finished or two runs do not belong together.
    """
    runs = []
    for name in names:
        record = store.run(task, name)
        runs.append(RunOutputs(record, record.oof(), record.test(), record.last_day_predictions()))
    check_compatible(runs)
    return runs


def check_compatible(runs: list[RunOutputs]) -> None:
    """Refuse runs whose data, folds or target space differ, naming the runs and the difference.

    Parameters
    ----------
    runs
        Loaded runs of one task; each is compared with the first.

    Raises
    ------
    InputError
        Naming the two runs and what differs.
    """
    first = runs[0]
    for run in runs[1:]:
        where = f"runs {first.name} and {run.name}"
        for key in MUST_MATCH:
            mine, theirs = getattr(first.record, key), getattr(run.record, key)
            if mine != theirs:
                what = key.replace("_fingerprint", "")
                raise InputError(
                    where, f"were made from different {what} ({mine} vs {theirs}); a blend needs the same {what}"
                )
        spaces = (blend_key(first.record.target_space), blend_key(run.record.target_space))
        if spaces[0] != spaces[1]:
            raise InputError(where, f"predict different target spaces ({spaces[0]} vs {spaces[1]})")
        if run.oof.shape != first.oof.shape or run.test.shape != first.test.shape:
            raise InputError(where, f"prediction shapes differ ({first.oof.shape} vs {run.oof.shape})")


def check_data(task: str, fingerprints: dict[str, str], data_dir, cache_dir=None) -> None:
    """Refuse runs made from other data than ``data_dir`` holds now.

    Parameters
    ----------
    task
        The runs' task.
    fingerprints
        Run name -> the data fingerprint its manifest records.
    data_dir, cache_dir
        The prepared competition folder and its cache, fingerprinted once.

    Raises
    ------
    InputError
        Naming the first such run.
    """
    current = data_fingerprint(task, data_dir, cache_dir)
    for name, fingerprint in fingerprints.items():
        if fingerprint != current:
            raise InputError(
                f"run {task}/{name}",
                f"was made from other data than {data_dir} holds now "
                f"(fingerprint {fingerprint} vs {current}); rerun it",
            )


def target_space(store: RunStore, space: dict) -> TargetSpace:
    """Rebuild the target space a manifest's ``target_space`` entry describes.

    Parameters
    ----------
    store
        The run store, which resolves the stored components file.
    space
        The manifest entry.

    Returns
    -------
    TargetSpace
        The run's space, without fold-fitted state.
    """
    return space_from_manifest(space, store.resolve)
