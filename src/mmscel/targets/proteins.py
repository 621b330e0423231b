"""Protein target spaces: the proteins themselves (optionally z-scored per cell), or their SVD fitted per fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmscel.metrics import standardize_rows
from mmscel.targets.base import TargetSpace


class NativeTargets(TargetSpace):
    """The scored targets themselves, optionally z-scored per cell.

    Parameters
    ----------
    standardize_cells
        Fit per-cell z-scored targets (the metric does not see the difference;
        learners with a squared loss weigh cells alike).
    n_targets
        Width of the targets, when known before fitting (recorded by ``fit``).
    """

    kind = "proteins"

    def __init__(self, standardize_cells: bool = False, n_targets: int | None = None):
        self.standardize_cells = standardize_cells
        self.n_targets = n_targets

    @property
    def fitted(self) -> bool:
        """Whether the width of the targets is known."""
        return self.n_targets is not None

    def fit(self, Y) -> NativeTargets:
        """Record the number of targets."""
        self.n_targets = int(Y.shape[1])
        return self

    def transform(self, Y) -> np.ndarray:
        """``Y`` as float32, z-scored per cell when asked."""
        values = np.asarray(Y, dtype=np.float32)
        return standardize_rows(values).astype(np.float32) if self.standardize_cells else values

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Learner outputs are predictions already."""
        return Z

    def prediction_width(self, Y) -> int:
        """The number of targets."""
        return int(Y.shape[1])

    def describe(self) -> dict[str, Any]:
        """``kind``, ``n_targets``, ``standardize_cells``."""
        return {"kind": self.kind, "n_targets": self.n_targets, "standardize_cells": self.standardize_cells}


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
    """

    kind = "protein_svd"
    per_fold = True

    def __init__(self, n_components: int = 32, standardize_cells: bool = False, n_targets: int | None = None):
        super().__init__(standardize_cells, n_targets)
        self.n_components = n_components
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether the SVD has been fitted."""
        return self.components is not None

    def fit(self, Y) -> ProteinSVD:
        """Centred SVD of the (z-scored) proteins of the training rows."""
        super().fit(Y)
        values = super().transform(Y)
        mean = values.mean(axis=0)
        _, _, vt = np.linalg.svd(values - mean, full_matrices=False)
        self.mean, self.components = (
            mean.astype(np.float32),
            vt[: min(self.n_components, vt.shape[0])].astype(np.float32),
        )
        return self

    def transform(self, Y) -> np.ndarray:
        """Proteins to SVD coefficients."""
        return ((super().transform(Y) - self.mean) @ self.components.T).astype(np.float32)

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """SVD coefficients back to proteins."""
        return (Z @ self.components + self.mean).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """The native description, plus the components fitted and the output (proteins)."""
        return {**super().describe(), "kind": self.kind, "fit_components": self.n_components, "output": "proteins"}

    def save(self, folder: Path) -> None:
        """Write the fold's mean and components (``.npy``)."""
        from mmscel.store.io import save_array

        save_array(Path(folder) / "protein_svd_mean.npy", self.mean)
        save_array(Path(folder) / "protein_svd_components.npy", self.components)
