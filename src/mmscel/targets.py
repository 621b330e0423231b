"""Target spaces: what level-1 learners fit, and how their outputs map back onto the scored targets.

A run stores its predictions in its space's *prediction space*: the proteins
(CITEseq), or the coefficients of the Multiome gene SVD (genes are
``coefficients @ components``). Learners fit the *learner space*:

==============  ==========================================  ======================================
space           learner space                               prediction space
==============  ==========================================  ======================================
native          the proteins (optionally per-cell z-scored)  the same
protein_svd     centred SVD coefficients, fitted per fold   proteins (optionally z-scored)
components      leading coefficients of the gene SVD        all coefficients (unfitted ones 0)
==============  ==========================================  ======================================

The metric, the per-cell Pearson, is invariant to a per-cell affine map, so a
space may z-score cells freely. Every space scores predictions against the
scored targets in row chunks, so a full-size Multiome matrix is never dense.
"""

from __future__ import annotations

import copy
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from mmscel.metrics import pearson_per_row, standardize_rows

ROW_CHUNK = 2048  # rows of the scored targets handled at a time


@dataclass(frozen=True)
class TargetBasis:
    """Linear map from coefficients to the scored targets: ``Y ~ Z @ components + mean``.

    Parameters
    ----------
    components
        k x n_targets, float32.
    mean
        n_targets, float32.
    """

    components: np.ndarray
    mean: np.ndarray

    def reconstruct(self, z: np.ndarray) -> np.ndarray:
        """Map coefficients onto the scored targets.

        Parameters
        ----------
        z
            Coefficients, one row per cell and ``k`` columns.

        Returns
        -------
        numpy.ndarray
            ``z @ components + mean`` (rows x n_targets), float32.
        """
        return (np.asarray(z, dtype=np.float32) @ self.components + self.mean).astype(np.float32)

    def leading(self, k: int) -> TargetBasis:
        """Keep the first components only.

        Parameters
        ----------
        k
            Components kept.

        Returns
        -------
        TargetBasis
            The map from the first ``k`` coefficients, with the same mean.
        """
        return TargetBasis(self.components[:k], self.mean)


class TargetSpace(ABC):
    """The space a level-1 learner fits, fitted on training targets.

    ``fit`` learns from the training rows' scored targets; ``transform`` maps
    scored targets to learner targets; ``inverse`` maps learner outputs to the
    prediction space a run stores; ``score`` compares predictions with the
    scored targets cell by cell. A space with ``per_fold`` set is refitted on
    each training fold (its state is saved beside the fold's model).
    """

    kind: ClassVar[str]
    per_fold: ClassVar[bool] = False

    @abstractmethod
    def fit(self, Y) -> TargetSpace:
        """Learn the space from training rows.

        Parameters
        ----------
        Y
            The scored targets of the training rows (dense or CSR).

        Returns
        -------
        TargetSpace
            ``self``, fitted.
        """

    @abstractmethod
    def transform(self, Y) -> np.ndarray:
        """Map scored targets to learner targets.

        Parameters
        ----------
        Y
            Scored targets (rows x targets, dense or CSR).

        Returns
        -------
        numpy.ndarray
            Learner targets (rows x learner dims, float32).
        """

    @abstractmethod
    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Map learner outputs to the prediction space a run stores.

        Parameters
        ----------
        Z
            Learner outputs (rows x learner dims).

        Returns
        -------
        numpy.ndarray
            Predictions (rows x prediction width, float32).
        """

    @abstractmethod
    def prediction_width(self, Y) -> int:
        """Width of the prediction space.

        Parameters
        ----------
        Y
            The scored targets (only their shape may be read).

        Returns
        -------
        int
            Columns of a run's predictions.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The manifest form of the space.

        Returns
        -------
        dict
            JSON-ready settings, ``kind`` first; :func:`space_from_manifest` reads them back.
        """

    @property
    @abstractmethod
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run (or the space was built around a fitted state)."""

    def clone(self) -> TargetSpace:
        """Copy the space, to fit the copy on one fold.

        Returns
        -------
        TargetSpace
            A deep copy (settings and any state).
        """
        return copy.deepcopy(self)

    @property
    def basis(self) -> TargetBasis | None:
        """The linear map from predictions to the scored targets (None: predictions are the targets)."""
        return None

    @property
    def learner_basis(self) -> TargetBasis | None:
        """The map from learner outputs to the scored targets, for learners that take their loss there."""
        return None

    def reconstruct(self, predictions: np.ndarray) -> np.ndarray:
        """Map predictions onto the scored targets.

        Parameters
        ----------
        predictions
            Rows x prediction width.

        Returns
        -------
        numpy.ndarray
            The scored targets' values (``predictions`` itself unless the space is compressed).
        """
        return predictions

    def score(self, predictions: np.ndarray, Y, rows: np.ndarray) -> np.ndarray:
        """Score predictions cell by cell against the scored targets.

        Parameters
        ----------
        predictions
            Predictions of ``rows`` in the prediction space.
        Y
            The scored targets of all rows (dense or CSR).
        rows
            The rows ``predictions`` belong to.

        Returns
        -------
        numpy.ndarray
            Per-cell Pearson, one per row of ``rows``.
        """
        return pearson_per_row(Y[rows], predictions)

    def save(self, folder: Path) -> None:  # noqa: B027 - spaces without fold state write nothing
        """Write fold-fitted state beside a fold's model (``.npy``); nothing by default.

        Parameters
        ----------
        folder
            The fold's checkpoint folder.
        """


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
        """Randomized TruncatedSVD of the scored targets."""
        rank = max(1, min(self.n_components, min(Y.shape) - 1))
        svd = TruncatedSVD(n_components=rank, algorithm="randomized", random_state=self.seed)
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

    def transform(self, Y) -> np.ndarray:
        """The leading coefficients of ``Y``: those of the fit for the fitted matrix, else a projection."""
        if self.embedding is not None and self.signature is not None and matrix_signature(Y) == self.signature:
            coefficients = self.embedding
        else:
            coefficients = np.vstack([np.asarray(part @ self.components.T, np.float32) for _, part in row_chunks(Y)])
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


def space_from_manifest(space: dict, resolve) -> TargetSpace:
    """The space a run's manifest describes; ``resolve`` maps a stored file name to a path.

    Parameters
    ----------
    space
        The manifest's ``target_space`` entry.
    resolve
        ``RunStore.resolve``: where the Multiome components file lives.

    Returns
    -------
    TargetSpace
        A space that reconstructs, scores and compares predictions (fold-fitted state not included).
    """
    from mmscel.store.io import load_array

    if space["kind"] == GeneSVD.kind:
        components = load_array(resolve(space["components_file"]))
        out = GeneSVD.from_fitted(components, fitted_components=space.get("fitted_components"))
        out.source = {key: space[key] for key in ("features", "components_file") if key in space}
        return out
    standardize = bool(space.get("standardize_cells", False))
    if space["kind"] == ProteinSVD.kind:
        return ProteinSVD(space.get("fit_components", 32), standardize, space.get("n_targets"))
    return NativeTargets(standardize, space.get("n_targets"))


def matrix_signature(Y) -> tuple:
    """A cheap identity of a target matrix.

    Parameters
    ----------
    Y
        Dense or sparse matrix.

    Returns
    -------
    tuple
        Its shape, number of stored values and a SHA-256 of its row sums (in order).
    """
    values = Y.data if sp.issparse(Y) else np.asarray(Y)
    row_sums = np.asarray(Y.sum(axis=1), dtype=np.float64).ravel()
    return (tuple(Y.shape), int(values.size), hashlib.sha256(row_sums.tobytes()).hexdigest())


def row_chunks(values, rows: np.ndarray | None = None, chunk: int = ROW_CHUNK, dense: bool = False):
    """Yield ``(offset, values[rows[offset : offset + chunk]])`` in turn, densified if asked.

    Indexing all the rows of a large CSR at once copies them (GBs for the full
    Multiome targets); a chunk at a time keeps the copy small.

    Parameters
    ----------
    values
        Dense or sparse matrix.
    rows
        Row indices to visit (None: all rows).
    chunk
        Rows per chunk.
    dense
        Densify sparse chunks.

    Yields
    ------
    tuple
        The offset into ``rows`` and that chunk's rows of ``values``.
    """
    rows = np.arange(values.shape[0]) if rows is None else rows
    for start in range(0, len(rows), chunk):
        part = values[rows[start : start + chunk]]
        yield start, (part.toarray() if dense and sp.issparse(part) else part)


def mean_profile_score(Y, train_rows: np.ndarray, valid_rows: np.ndarray) -> float:
    """The floor on a fold: the training rows' mean target profile, scored on the validation rows.

    Parameters
    ----------
    Y
        The scored targets of all rows (dense or CSR).
    train_rows, valid_rows
        The fold's training and validation rows.

    Returns
    -------
    float
        The mean per-cell Pearson of the validation rows with that profile.
    """
    total = np.zeros(Y.shape[1])
    for _, part in row_chunks(Y, train_rows):
        total += np.asarray(part.sum(axis=0), dtype=np.float64).ravel()
    mean = total / len(train_rows)
    scores = [pearson_per_row(t, np.broadcast_to(mean, t.shape)) for _, t in row_chunks(Y, valid_rows, dense=True)]
    return float(np.concatenate(scores).mean())
