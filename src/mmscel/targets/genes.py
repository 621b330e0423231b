"""The Multiome gene space compressed by a truncated SVD of the training targets."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from mmscel.metrics import pearson_per_row
from mmscel.targets.base import ROW_CHUNK, TargetBasis, TargetSpace, matrix_signature, row_chunks


class GeneSVD(TargetSpace):
    """The Multiome gene space compressed by an uncentred TruncatedSVD of the training targets.

    Learners fit the leading ``fitted_components`` coefficients (all when None);
    the prediction space holds all ``n_components`` coefficients, the unfitted
    ones 0. As with scikit-learn's ``fit_transform``, the coefficients of the
    rows the SVD was fitted on are those of the fit, not a fresh projection.

    Parameters
    ----------
    n_components
        Components of the SVD.
    fitted_components
        Leading components learners fit (None: all).
    seed
        Seed of the randomized SVD.
    """

    kind = "components"

    def __init__(self, n_components: int = 128, fitted_components: int | None = None, seed: int = 0):
        self.n_components, self.fitted_components, self.seed = n_components, fitted_components, seed
        self.components: np.ndarray | None = None
        self.embedding: np.ndarray | None = None  # coefficients of the rows the SVD was fitted on
        self.signature: tuple | None = None  # of the matrix it was fitted on
        self.source: dict[str, Any] = {}  # where the components are stored, for the manifest

    @property
    def fitted(self) -> bool:
        """Whether the SVD has been fitted."""
        return self.components is not None

    @classmethod
    def from_fitted(cls, components: np.ndarray, embedding: np.ndarray | None = None, Y=None, **settings) -> GeneSVD:
        """Build a space around an SVD fitted elsewhere (cached with the features).

        Parameters
        ----------
        components
            The SVD's components (n_components x genes).
        embedding
            The coefficients of the rows it was fitted on, when known.
        Y
            The matrix it was fitted on (its signature is kept; None: no fitted rows are recognised).
        **settings
            ``fitted_components`` and ``seed``.

        Returns
        -------
        GeneSVD
            A fitted space.
        """
        space = cls(n_components=int(components.shape[0]), **settings)
        space.components, space.embedding = components, embedding
        space.signature = None if Y is None else matrix_signature(Y)
        return space

    def fit(self, Y) -> GeneSVD:
        """Randomized truncated SVD of the scored targets, its products on all cores (as the input SVDs)."""
        from mmscel.features.randomized_svd import RandomizedSVD  # features import this module

        rank = max(1, min(self.n_components, min(Y.shape) - 1))
        description = f"target SVD {rank} of {Y.shape[0]:,} x {Y.shape[1]:,}: power iterations"
        svd = RandomizedSVD(rank, random_state=self.seed, description=description)
        self.embedding = svd.fit_transform(Y).astype(np.float32)
        self.components = svd.components_.astype(np.float32)
        self.n_components, self.signature = rank, matrix_signature(Y)
        return self

    def fitted_on(self, Y) -> GeneSVD:
        """Record this SVD as fitted on ``Y``, so that the coefficients of ``Y`` are those of the fit.

        Parameters
        ----------
        Y
            The matrix whose rows the stored embedding belongs to.

        Returns
        -------
        GeneSVD
            A shallow copy with ``Y``'s signature.
        """
        space = copy.copy(self)
        space.signature = matrix_signature(Y)
        return space

    def with_fitted(self, k: int | None) -> GeneSVD:
        """Let learners fit only the leading components of the same SVD.

        Parameters
        ----------
        k
            Leading components learners fit (capped at ``n_components``; None: all).

        Returns
        -------
        GeneSVD
            A shallow copy.
        """
        space = copy.copy(self)
        space.fitted_components = None if k is None else min(k, self.n_components)
        return space

    @property
    def fitted_width(self) -> int:
        """How many leading coefficients learners fit."""
        return self.n_components if self.fitted_components is None else self.fitted_components

    def coefficients(self, Y) -> np.ndarray:
        """All coefficients of ``Y``: those of the fit for the fitted matrix, else a projection.

        Parameters
        ----------
        Y
            Rows x genes (dense or CSR).

        Returns
        -------
        numpy.ndarray
            Rows x ``n_components``, float32.
        """
        if self.embedding is not None and self.signature is not None and matrix_signature(Y) == self.signature:
            return self.embedding
        return np.vstack([np.asarray(part @ self.components.T, np.float32) for _, part in row_chunks(Y)])

    def transform(self, Y) -> np.ndarray:
        """The leading coefficients of ``Y`` (see :meth:`coefficients`)."""
        coefficients = self.coefficients(Y)
        return coefficients if self.fitted_components is None else coefficients[:, : self.fitted_components]

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Learner outputs widened to all components (unfitted ones 0)."""
        if Z.shape[1] == self.n_components:
            return Z
        out = np.zeros((len(Z), self.n_components), dtype=np.float32)
        out[:, : Z.shape[1]] = Z
        return out

    def prediction_width(self, Y) -> int:
        """All components."""
        return self.n_components

    @property
    def basis(self) -> TargetBasis:
        """Genes from all coefficients (a zero-mean basis)."""
        return TargetBasis(self.components, np.zeros(self.components.shape[1], dtype=np.float32))

    @property
    def learner_basis(self) -> TargetBasis:
        """Genes from the coefficients learners fit."""
        return self.basis.leading(self.fitted_width) if self.fitted_components is not None else self.basis

    def reconstruct(self, predictions: np.ndarray) -> np.ndarray:
        """Genes from coefficients."""
        return self.basis.reconstruct(predictions)

    def score(self, predictions: np.ndarray, Y, rows: np.ndarray, chunk: int = ROW_CHUNK) -> np.ndarray:
        """Per-cell Pearson on all genes, reconstructed chunk by chunk (never the whole dense matrix).

        Parameters
        ----------
        predictions, Y, rows
            As in :meth:`TargetSpace.score`.
        chunk
            Rows reconstructed at a time.
        """
        basis = self.basis
        scores = np.empty(len(rows))
        for start, truth in row_chunks(Y, rows, chunk, dense=True):
            stop = start + len(truth)
            scores[start:stop] = pearson_per_row(truth, basis.reconstruct(predictions[start:stop]))
        return scores

    def describe(self) -> dict[str, Any]:
        """``kind``, the number of components and genes, where the components live, the fitted ones."""
        out = {"kind": self.kind, "n_components": self.n_components, **self.source}
        out["n_genes"] = int(self.components.shape[1])
        if self.fitted_components is not None:
            out["fitted_components"] = self.fitted_components
        return out
