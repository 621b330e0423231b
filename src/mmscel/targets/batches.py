"""Per-batch (donor x day) median centring of learner targets, fitted on a fold's training rows.

A batch's median target profile is a batch effect the inputs of a new batch
cannot reveal: at prediction time the median of a test (or validation) batch
is unknown, since it would be read off that batch's targets. So learners fit
each training row minus its batch's median (the medians taken over the
training rows of the fold only), and predictions get back the *typical*
offset: the mean of the training batches' medians, the same vector for every
predicted row. Nothing of a predicted row's batch is read from its targets,
and validation rows never enter the medians, so the scheme does not leak.

A learner that takes its loss on the scored targets (the MLP) gets them
moved onto the typical batch (``basis_targets``), and a map from its outputs
that adds the typical offset (``learner_basis``): the same centred targets,
seen where the predictions are scored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmscel.targets.base import RowSubset, TargetBasis
from mmscel.targets.genes import GeneSVD
from mmscel.targets.moments import ShiftedRows


def batch_labels(metadata: pd.DataFrame) -> np.ndarray:
    """The batch of each cell: ``"<donor>_<day>"``.

    Parameters
    ----------
    metadata
        One row per cell, with ``donor`` and ``day`` columns.

    Returns
    -------
    numpy.ndarray
        One string per cell.
    """
    return (metadata["donor"].astype(str) + "_" + metadata["day"].astype(str)).to_numpy().astype(str)


@dataclass(frozen=True)
class BatchOffsets:
    """Per-batch medians of learner targets and their mean, the typical offset.

    Attributes
    ----------
    labels
        The batches seen in fitting, sorted.
    medians
        One median profile per batch (batches x targets, float32).
    typical
        The mean of the batches' medians (each batch counts once, whatever its size).
    """

    labels: np.ndarray
    medians: np.ndarray
    typical: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, batches: np.ndarray) -> BatchOffsets:
        """Medians of ``values`` per batch.

        Parameters
        ----------
        values
            Rows x targets.
        batches
            The batch of each row.

        Returns
        -------
        BatchOffsets

        Raises
        ------
        ValueError
            When ``values`` and ``batches`` differ in length or are empty.
        """
        batches = np.asarray(batches)
        if len(batches) != len(values) or len(values) == 0:
            raise ValueError(f"batch centring: {len(values)} rows of targets but {len(batches)} batch labels")
        labels, codes = np.unique(batches, return_inverse=True)
        medians = np.stack([np.median(values[codes == k], axis=0) for k in range(len(labels))]).astype(np.float32)
        return cls(labels, medians, medians.mean(axis=0).astype(np.float32))

    def of(self, batches: np.ndarray) -> np.ndarray:
        """The offset of each row: its batch's median, or the typical offset for a batch not seen in fitting.

        Parameters
        ----------
        batches
            The batch of each row.

        Returns
        -------
        numpy.ndarray
            Rows x targets, float32.
        """
        batches = np.asarray(batches)
        position = np.minimum(np.searchsorted(self.labels, batches), len(self.labels) - 1)
        known = self.labels[position] == batches
        return np.where(known[:, None], self.medians[position], self.typical[None, :]).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write the medians and the typical offset beside a fold's model (``.npy``).

        Parameters
        ----------
        folder
            The fold's checkpoint folder.
        """
        from mmscel.store.io import save_array

        save_array(Path(folder) / "batch_medians.npy", self.medians)
        save_array(Path(folder) / "batch_typical_offset.npy", self.typical)
        save_array(Path(folder) / "batch_labels.npy", self.labels.astype(str))


class BatchCentredGenes(GeneSVD):
    """The Multiome gene SVD with per-batch median centring of its coefficients (see the module docs).

    Learners fit each training row's coefficients minus its batch's median
    coefficients; predictions are the learner's outputs (widened to all
    components) plus the typical offset, so the unfitted components predict
    the training batches' typical coefficients rather than 0. The space is
    refitted on each training fold.

    Parameters
    ----------
    n_components, fitted_components, seed
        As in :class:`GeneSVD`.
    batches
        The batch of each training row (all rows of the scored targets, in order).
    """

    per_fold = True

    def __init__(self, n_components=128, fitted_components=None, seed=0, *, batches: np.ndarray):
        super().__init__(n_components, fitted_components, seed)
        self.batches = np.asarray(batches)
        self.offsets: BatchOffsets | None = None

    @classmethod
    def around(cls, svd: GeneSVD, batches: np.ndarray) -> BatchCentredGenes:
        """A centred space sharing a fitted gene SVD (its components and stored coefficients).

        Parameters
        ----------
        svd
            The fitted gene SVD (with the leading components learners fit).
        batches
            The batch of each training row.

        Returns
        -------
        BatchCentredGenes
        """
        space = cls(svd.n_components, svd.fitted_components, svd.seed, batches=batches)
        space.components, space.embedding, space.signature = svd.components, svd.embedding, svd.signature
        space.source = dict(svd.source)
        return space

    def clone(self) -> BatchCentredGenes:
        """A copy sharing the SVD's arrays (never changed in place), without fold state."""
        space = copy.copy(self)
        space.offsets = None
        return space

    def fit_rows(self, Y, rows) -> BatchCentredGenes:
        """The batches' median coefficients over ``rows`` (the SVD itself stays as it is)."""
        self.offsets = BatchOffsets.fit(self.coefficients(Y)[rows], self.batches[rows])
        return self

    def transform_rows(self, Y, rows) -> np.ndarray:
        """The leading coefficients of ``rows`` minus their batch's median."""
        centred = self.coefficients(Y)[rows] - self.offsets.of(self.batches[rows])
        return centred[:, : self.fitted_width]

    def transform(self, Y) -> np.ndarray:
        """All rows of ``Y`` (the training rows the batches belong to), centred."""
        return self.transform_rows(Y, slice(None))

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Learner outputs widened to all components, plus the typical offset."""
        return (super().inverse(Z) + self.offsets.typical).astype(np.float32)

    @property
    def learner_basis(self) -> TargetBasis:
        """Genes from the coefficients learners fit: their components, and the typical offset's genes as mean."""
        mean = (self.offsets.typical @ self.components).astype(np.float32)
        return TargetBasis(self.components[: self.fitted_width], mean)

    def basis_targets(self, Y, rows) -> ShiftedRows:
        """The genes of ``rows`` moved onto the typical batch: each minus its batch's offset from the typical, in genes.

        What :attr:`learner_basis` maps the learner targets onto, so that a loss
        taken on the genes fits the same centred targets as one on the coefficients.
        """
        shift = self.offsets.of(self.batches[rows]) - self.offsets.typical
        return ShiftedRows(RowSubset(Y, rows), shift, self.components)

    def describe(self) -> dict[str, Any]:
        """The gene SVD's description, with ``batch_centering``."""
        return {**super().describe(), "batch_centering": True}

    def save(self, folder: Path) -> None:
        """Write the fold's batch medians and typical offset."""
        self.offsets.save(folder)
