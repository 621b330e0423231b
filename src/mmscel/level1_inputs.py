"""What a level-1 run reads: its features, targets and shared folds, and the splits it fits on them.

:func:`load_inputs` builds (or reads from the cache) a run's features and loads the training
targets and the shared fold file; :func:`fold_plan` turns the folds into the run's splits: the
scheme's folds, the last-day holdout that mimics the private leaderboard, and a refit on all rows
when the config asks for one. Each split has its own seed offset, so a resumed run fits every
split exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmscel import folds as folds_module
from mmscel.config import RunConfig
from mmscel.cv import Split
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.features import FeatureSet, build_features
from mmscel.store import LAST_DAY, RunStore
from mmscel.targets import GeneSVD, TargetSpace

REFIT = "refit"
SEED_OFFSETS = {LAST_DAY: 1000, REFIT: 2000}  # cv folds use their number


@dataclass
class Level1Inputs:
    """What a run's cross-validation reads: features, training metadata and targets, the shared folds.

    Attributes
    ----------
    features
        The run's feature set (train and test rows).
    metadata
        The training cells' metadata, in the order of the features.
    Y
        The scored targets of the training cells (dense proteins or CSR genes).
    folds
        The shared fold assignment of the run's scheme.
    gene_svd
        The Multiome gene SVD fitted on ``Y`` (None for CITEseq).
    """

    features: FeatureSet
    metadata: pd.DataFrame
    Y: object
    folds: folds_module.Folds
    gene_svd: GeneSVD | None

    def target_space(self, config: RunConfig) -> TargetSpace:
        """The target space ``config`` asks for on these targets (see :meth:`RunConfig.target_space`)."""
        return config.target_space(self.Y.shape[1], self.gene_svd, self.metadata)

    def plan(self, config: RunConfig) -> list[Split]:
        """The splits ``config`` fits on these folds (see :func:`fold_plan`)."""
        return fold_plan(config, self.folds, self.metadata["day"].to_numpy())


def load_inputs(config: RunConfig, data_dir, cache_dir, store: RunStore) -> Level1Inputs:
    """Build (or read from the cache) the run's features, and load its targets and the shared folds.

    Parameters
    ----------
    config
        The run config (task, features, seed, folds).
    data_dir, cache_dir
        The prepared competition folder and its cache.
    store
        The store holding the feature cache and the fold files.

    Returns
    -------
    Level1Inputs

    Raises
    ------
    InputError
        Unprepared data, or a fold file whose cells are not in the order of the features.
    """
    features = build_features(config.task, config.feature_config(), data_dir, cache_dir, store, seed=config.seed)
    train = load(config.task, "train", data_dir, cache_dir, check=False, inputs=False)
    metadata = train.metadata
    scheme = config.folds
    folds = folds_module.load_or_create(
        store, config.task, scheme.scheme, metadata, features.data_fingerprint, scheme.n_splits, scheme.seed
    )
    if not np.array_equal(folds.cell_ids, features.train_ids.astype(str)):
        raise InputError(store.fold_file(config.task, scheme.scheme), "cells are not in the order of the features")
    Y = train.targets if config.task == "multi" else np.asarray(train.targets, dtype=np.float32)
    gene_svd = features.target_space.fitted_on(Y) if features.target_space is not None else None
    return Level1Inputs(features, metadata, Y, folds, gene_svd)


def fold_plan(config: RunConfig, folds: folds_module.Folds, day: np.ndarray) -> list[Split]:
    """The run's splits: the scheme's folds, the last-day holdout, and a refit on all rows when asked.

    Parameters
    ----------
    config
        The run config (its scheme and ``test_predictions``).
    folds
        The shared fold assignment.
    day
        The day of each training cell.

    Returns
    -------
    list of Split
        ``cv`` splits named by fold number, then ``last_day`` (a holdout) and ``refit`` where they apply;
        the ``cv`` splits predict the test cells unless the test predictions are the refit's alone.
    """
    fold_mean = config.test_predictions != "refit"
    plan = [Split(str(k), *folds.split(k), seed_offset=k, predict_test=fold_mean) for k in folds.fold_ids]
    if config.folds.scheme != "last_day" and len(np.unique(day)) > 1:  # imported data may hold one day
        last = day == day.max()
        rows = (np.flatnonzero(~last), np.flatnonzero(last))
        plan.append(Split(LAST_DAY, *rows, role="holdout", seed_offset=SEED_OFFSETS[LAST_DAY], predict_test=False))
    if config.test_predictions != "fold_mean":
        rows = (np.arange(len(day)), np.zeros(0, dtype=np.int64))
        plan.append(Split(REFIT, *rows, role="refit", seed_offset=SEED_OFFSETS[REFIT]))
    return plan
