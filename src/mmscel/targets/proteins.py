"""Protein target spaces: the proteins themselves (optionally z-scored per cell), or their SVD fitted per fold.

Before a learner sees them, each cell's proteins may be clipped to the cell's
``[q, 1 - q]`` quantiles, divided by the cell's median, z-scored (in that
order), and then centred per batch (see :mod:`mmscel.targets.batches`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmscel.metrics import standardize_rows
from mmscel.targets.base import TargetBasis, TargetSpace
from mmscel.targets.batches import BatchOffsets
from mmscel.targets.rows import clip_rows, median_scale_rows


class NativeTargets(TargetSpace):
    """The scored targets themselves, optionally z-scored per cell.

    Parameters
    ----------
    standardize_cells
        Fit per-cell z-scored targets (the metric does not see the difference;
        learners with a squared loss weigh cells alike).
    n_targets
        Width of the targets, when known before fitting (recorded by ``fit``).
    clip_quantile
        Clip each cell's targets to its ``[q, 1 - q]`` quantiles first (0: off).
    median_normalize
        Divide each cell's targets by its median (cells with a median that is not positive are left as they are).
    batches
        The batch of each training row: learners then fit targets centred on their batch's median
        (fitted per fold), and predictions get the training batches' typical offset back. None: off.
    """

    kind = "proteins"

    def __init__(
        self,
        standardize_cells: bool = False,
        n_targets: int | None = None,
        *,
        clip_quantile: float = 0.0,
        median_normalize: bool = False,
        batches: np.ndarray | None = None,
    ):
        self.standardize_cells = standardize_cells
        self.n_targets = n_targets
        self.clip_quantile, self.median_normalize = clip_quantile, median_normalize
        self.batches = None if batches is None else np.asarray(batches)
        self.offsets: BatchOffsets | None = None

    @property
    def per_fold(self) -> bool:
        """Refitted on each training fold when centred per batch (the medians must not see the predicted rows)."""
        return self.batches is not None

    @property
    def fitted(self) -> bool:
        """Whether the width of the targets is known."""
        return self.n_targets is not None

    def fit(self, Y) -> NativeTargets:
        """Record the number of targets (and the batch medians of all rows, when centred per batch)."""
        return self.fit_rows(Y, slice(None))

    def fit_rows(self, Y, rows) -> NativeTargets:
        """Record the number of targets, and the batch medians of ``rows`` when centred per batch."""
        self.n_targets = int(Y.shape[1])
        if self.batches is not None:
            self.offsets = BatchOffsets.fit(self._cells(Y[rows]), self.batches[rows])
        return self

    def _cells(self, Y) -> np.ndarray:
        values = np.asarray(Y, dtype=np.float32)
        if self.clip_quantile:
            values = clip_rows(values, self.clip_quantile)
        if self.median_normalize:
            values = median_scale_rows(values)
        return standardize_rows(values).astype(np.float32) if self.standardize_cells else values

    def transform(self, Y) -> np.ndarray:
        """``Y`` as float32 after the per-cell transforms asked for (and centred, for the training rows)."""
        return self.transform_rows(Y, slice(None))

    def transform_rows(self, Y, rows) -> np.ndarray:
        """The per-cell transforms of ``Y[rows]``, minus their batch's median when centred per batch."""
        values = self._cells(Y[rows])
        return values if self.offsets is None else values - self.offsets.of(self.batches[rows])

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Learner outputs are predictions already (plus the typical offset, when centred per batch)."""
        return Z if self.offsets is None else (Z + self.offsets.typical).astype(np.float32)

    @property
    def learner_basis(self) -> TargetBasis | None:
        """With batch centring, the outputs plus the typical offset: the map to what a run predicts.

        A loss that is not invariant to a per-target offset (the per-cell
        correlation) must be taken after the offset is added, as the
        predictions are scored; otherwise the scale it leaves free in each
        cell decides how much of the offset the prediction keeps. Without
        centring the outputs are the predictions (None).
        """
        if self.offsets is None:
            return None
        return TargetBasis(np.eye(len(self.offsets.typical), dtype=np.float32), self.offsets.typical)

    def basis_targets(self, Y, rows) -> np.ndarray:
        """The centred targets of ``rows`` plus the typical offset (the transformed cells on the typical batch)."""
        # the proteins themselves, also for a protein SVD (whose transform_rows gives coefficients)
        return (NativeTargets.transform_rows(self, Y, rows) + self.offsets.typical).astype(np.float32)

    def prediction_width(self, Y) -> int:
        """The number of targets."""
        return int(Y.shape[1])

    def describe(self) -> dict[str, Any]:
        """``kind``, ``n_targets``, ``standardize_cells``, and the other transforms when used."""
        out = {"kind": self.kind, "n_targets": self.n_targets, "standardize_cells": self.standardize_cells}
        if self.clip_quantile:
            out["clip_quantile"] = self.clip_quantile
        if self.median_normalize:
            out["median_normalize"] = True
        if self.batches is not None:
            out["batch_centering"] = True
        return out

    def row_options(self) -> dict[str, Any]:
        """The per-cell settings and batches, as keyword arguments of the constructor."""
        return {"clip_quantile": self.clip_quantile, "median_normalize": self.median_normalize, "batches": self.batches}

    def save(self, folder: Path) -> None:
        """Write the fold's batch medians, when centred per batch."""
        if self.offsets is not None:
            self.offsets.save(folder)


class ProteinSVD(NativeTargets):
    """A compressed protein space: the centred SVD of each training fold's proteins.

    Parameters
    ----------
    n_components
        Directions kept (GBDTs then fit one model per direction instead of per protein).
    standardize_cells
        Z-score cells before the SVD.
    n_targets
        Width of the proteins, when known before fitting.
    **row_options
        ``clip_quantile``, ``median_normalize``, ``batches``: as in :class:`NativeTargets`, applied before the SVD.
    """

    kind = "protein_svd"
    per_fold = True

    def __init__(
        self, n_components: int = 32, standardize_cells: bool = False, n_targets: int | None = None, **row_options
    ):
        super().__init__(standardize_cells, n_targets, **row_options)
        self.n_components = n_components
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether the SVD has been fitted."""
        return self.components is not None

    def fit_rows(self, Y, rows) -> ProteinSVD:
        """Centred SVD of the (transformed, batch-centred) proteins of ``rows``."""
        super().fit_rows(Y, rows)
        values = super().transform_rows(Y, rows)
        mean = values.mean(axis=0)
        _, _, vt = np.linalg.svd(values - mean, full_matrices=False)
        self.mean, self.components = (
            mean.astype(np.float32),
            vt[: min(self.n_components, vt.shape[0])].astype(np.float32),
        )
        return self

    def transform_rows(self, Y, rows) -> np.ndarray:
        """Proteins of ``rows`` to SVD coefficients."""
        return ((super().transform_rows(Y, rows) - self.mean) @ self.components.T).astype(np.float32)

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """SVD coefficients back to proteins."""
        proteins = (Z @ self.components + self.mean).astype(np.float32)
        return super().inverse(proteins)

    @property
    def learner_basis(self) -> TargetBasis | None:
        """With batch centring, coefficients to proteins with the typical offset added (as :meth:`inverse`)."""
        if self.offsets is None:
            return None
        return TargetBasis(self.components, (self.mean + self.offsets.typical).astype(np.float32))

    def describe(self) -> dict[str, Any]:
        """The native description, plus the components fitted and the output (proteins)."""
        return {**super().describe(), "kind": self.kind, "fit_components": self.n_components, "output": "proteins"}

    def save(self, folder: Path) -> None:
        """Write the fold's mean and components (``.npy``), and its batch medians when centred."""
        from mmscel.store.io import save_array

        save_array(Path(folder) / "protein_svd_mean.npy", self.mean)
        save_array(Path(folder) / "protein_svd_components.npy", self.components)
        super().save(folder)
