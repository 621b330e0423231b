"""The ``blend`` objective of a tuning session: a trial scored by what it adds to the task's finished runs.

A trial's out-of-fold predictions join the OOF of the task's finished level-1
runs that share its data, folds and target space (the run named like the tuned
config is left out: the tuned config would replace it). Their blend is scored
with the per-cell statistics level-2 uses (:func:`mmscel.blend.run.cell_statistics`:
component space for Multiome's gene-SVD coefficients), on the cells the ``cv``
folds validate, and only there: no test row and no last-day holdout prediction
enters.

The trial's value is the cross-fitted blend score of level-2's nested estimate
(:func:`mmscel.blend.run.nested_per_cell`): each fold's cells scored with
weights fitted on the other folds' cells. The weights are fitted with
``slsqp``: deterministic (a trial's value depends on its predictions alone),
continuous in the predictions (``greedy``'s weights move in steps), and fast
(a few hundred evaluations of an O(cells x runs^2) objective per fold).

The nested score needs every fold's predictions, so after each ``cv`` fold
the pruner is told the blend score of that fold's cells with weights fitted on
the same cells (:meth:`Ensemble.fold_score`): optimistic, but computed alike
for every trial on the same cells, which is all a pruner compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmscel.blend.inputs import target_space
from mmscel.blend.methods import fit_weights
from mmscel.blend.objective import CellStatistics
from mmscel.blend.run import cell_statistics, nested_per_cell
from mmscel.config import RunConfig
from mmscel.errors import InputError
from mmscel.level1_inputs import Level1Inputs
from mmscel.store import RunRecord, RunStore, digest
from mmscel.targets import TargetBasis, TargetSpace, blend_key

METHOD = "slsqp"
RUNS_ATTR = "blend_runs"  # study user attribute: the runs blended with, name -> manifest digest


def compatible_runs(store: RunStore, config: RunConfig, inputs: Level1Inputs, space: TargetSpace) -> list[RunRecord]:
    """The finished runs a trial of ``config`` is blended with, by name.

    Parameters
    ----------
    store
        The store holding the level-1 runs.
    config
        The trial's config (its task and name; the run of that name is left out).
    inputs
        Its inputs (the data and fold fingerprints runs must share).
    space
        Its target space (runs must predict a space :func:`mmscel.targets.blend_key` says blends with it).

    Returns
    -------
    list of RunRecord
        Sorted by name, as level-2 orders them.
    """
    key = blend_key(space.describe())
    runs = [
        run
        for run in store.runs(config.task)
        if run.name != config.name
        and run.fold_fingerprint == inputs.folds.fingerprint
        and run.data_fingerprint == inputs.features.data_fingerprint
        and blend_key(run.target_space) == key
    ]
    return sorted(runs, key=lambda run: run.name)


def run_digests(runs: list[RunRecord]) -> dict[str, str]:
    """Each run's name and the digest of its manifest (a rerun writes another manifest).

    Parameters
    ----------
    runs
        Finished runs.

    Returns
    -------
    dict
    """
    return {run.name: digest(run.manifest) for run in runs}


def blend_facts(store: RunStore, config: RunConfig, inputs: Level1Inputs) -> dict:
    """The study facts of the ``blend`` objective: the runs blended with, named with their manifest digests.

    Parameters
    ----------
    store, config, inputs
        As in :func:`compatible_runs` (the space is the config's).

    Returns
    -------
    dict
        ``{RUNS_ATTR: {name: digest}}``.

    Raises
    ------
    InputError
        When the folds have fewer than two validation folds, or no run is compatible.
    """
    if len(inputs.folds.fold_ids) < 2:
        raise InputError("--objective", f"blend needs two or more cv folds (scheme {config.folds.scheme} has one)")
    runs = compatible_runs(store, config, inputs, inputs.target_space(config))
    if not runs:
        raise InputError(
            "--objective",
            f"blend needs finished level-1 runs of {config.task} on the same folds, data and target space "
            f"(other than {config.name}); run mmscel level1 first",
        )
    return {RUNS_ATTR: run_digests(runs)}


def describe_change(recorded: dict[str, str], found: dict[str, str]) -> str:
    """What differs between two sets of runs (see :func:`run_digests`), in a few words.

    Parameters
    ----------
    recorded, found
        Run name -> manifest digest, before and now.

    Returns
    -------
    str
        E.g. ``added a; removed b; rerun c``.
    """
    parts = {
        "added": sorted(set(found) - set(recorded)),
        "removed": sorted(set(recorded) - set(found)),
        "rerun": sorted(name for name in set(found) & set(recorded) if found[name] != recorded[name]),
    }
    return "; ".join(f"{what} {', '.join(names)}" for what, names in parts.items() if names)


def check_runs(study, recorded: dict | None, facts: dict, where) -> None:
    """Refuse a study whose recorded runs to blend with are not those of ``facts`` (trials would not compare).

    Parameters
    ----------
    study
        The study.
    recorded
        The facts recorded in the study (None for a study without any).
    facts
        This session's facts (without :data:`RUNS_ATTR` for the other objectives: nothing is checked).
    where
        What the message names (the study's journal or database).

    Raises
    ------
    InputError
        One line naming the study and the runs added, removed or rerun.
    """
    found = facts.get(RUNS_ATTR)
    recorded = (recorded or {}).get(RUNS_ATTR)
    if found is None or recorded is None or found == recorded:
        return
    raise InputError(
        where,
        f"study '{study.study_name}' was made with other finished runs to blend with "
        f"({describe_change(recorded, found)}): its trials would not compare; pass another --study",
    )


@dataclass
class BlendScore:
    """A trial's blend: the nested score, the in-sample score and the weights fitted on every validated cell."""

    nested: float
    in_sample: float
    weights: dict[str, float]


class Ensemble:
    """The finished runs a trial is blended with, loaded once per session.

    Parameters
    ----------
    names
        The runs' names, then the trial's (its config's name).
    oof
        The runs' OOF predictions (training rows x prediction space).
    truth
        The scored targets of the training rows (dense, or CSR genes).
    basis
        The runs' target basis (None: proteins).
    folds
        The fold label of each training row.
    """

    def __init__(self, names: list[str], oof: list[np.ndarray], truth, basis: TargetBasis | None, folds: np.ndarray):
        self.names, self.oof, self.truth, self.basis, self.folds = names, oof, truth, basis, folds
        self.validated = np.all([np.isfinite(o).all(axis=1) for o in oof], axis=0)

    @classmethod
    def load(cls, store: RunStore, config: RunConfig, inputs: Level1Inputs, space: TargetSpace, recorded: dict):
        """Load the runs a trial of ``config`` is blended with; refuse a set other than the study's.

        Parameters
        ----------
        store, config, inputs, space
            As in :func:`compatible_runs`.
        recorded
            The study's runs (name -> manifest digest).

        Returns
        -------
        Ensemble

        Raises
        ------
        InputError
            When the compatible runs are not those recorded (the trial's target space differs, or runs changed).
        """
        runs = compatible_runs(store, config, inputs, space)
        found = run_digests(runs)
        if found != recorded:
            key = blend_key(space.describe())
            change = describe_change(recorded, found)
            raise InputError(
                config.name, f"in its target space {key}, the runs to blend with are not the study's ({change})"
            )
        basis = target_space(store, runs[0].target_space).basis
        names = [run.name for run in runs] + [config.name]
        return cls(names, [run.oof() for run in runs], inputs.Y, basis, inputs.folds.fold)

    def statistics(self, predictions: np.ndarray, rows: np.ndarray) -> CellStatistics:
        """Level-2's statistics of the runs and the trial's ``predictions`` of ``rows``.

        Parameters
        ----------
        predictions
            The trial's predictions of ``rows``.
        rows
            Training rows.

        Returns
        -------
        CellStatistics
        """
        truth = self.truth if len(rows) == self.truth.shape[0] else self.truth[rows]
        return cell_statistics([o[rows] for o in self.oof] + [predictions], truth, self.basis)

    def fold_score(self, fold: str, predictions: np.ndarray) -> float:
        """The blend score on one fold's cells, its weights fitted on the same cells (a pruning signal).

        Parameters
        ----------
        fold
            The ``cv`` split's name (its fold number).
        predictions
            The trial's predictions of that fold's cells.

        Returns
        -------
        float
        """
        stats = self.statistics(predictions, np.flatnonzero(self.folds == int(fold)))
        return stats.score(fit_weights(METHOD, stats))

    def score(self, oof: np.ndarray) -> BlendScore:
        """The blend with the trial's OOF predictions: nested and in-sample scores, weights per run.

        Parameters
        ----------
        oof
            The trial's OOF predictions (training rows; NaN where no ``cv`` fold validates).

        Returns
        -------
        BlendScore
        """
        rows = np.flatnonzero(self.validated & np.isfinite(oof).all(axis=1))
        stats = self.statistics(oof[rows], rows)
        nested = nested_per_cell(stats, self.folds[rows], METHOD)
        weights = fit_weights(METHOD, stats)
        by_run = {name: float(w) for name, w in zip(self.names, weights)}
        return BlendScore(float(nested.mean()), stats.score(weights), by_run)
