"""The target-space interface, the linear map from coefficients to targets, and chunked scoring helpers."""

from __future__ import annotations

import copy
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from mmscel.metrics import pearson_per_row

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


@dataclass(frozen=True)
class RowSubset:
    """Some rows of a matrix, read on demand: ``subset[idx]`` is ``matrix[rows[idx]]``.

    A fold hands a learner its rows of the full target matrix this way rather than as a copy,
    which at the competition's size would be GBs beside the matrix itself; a learner reads it a
    batch of rows at a time.

    Parameters
    ----------
    matrix
        The whole matrix (dense or CSR).
    rows
        The rows of it this subset holds, in order.
    """

    matrix: np.ndarray | sp.csr_matrix
    rows: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.matrix.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx):
        return self.matrix[self.rows[idx]]


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

    def fit_rows(self, Y, rows) -> TargetSpace:
        """Learn the space from some rows of the scored targets (a fold's training rows).

        Spaces that need to know which rows they see (their batches) override this.

        Parameters
        ----------
        Y
            The scored targets of all rows (dense or CSR).
        rows
            The rows to learn from (indices, or a slice).

        Returns
        -------
        TargetSpace
            ``self``, fitted.
        """
        return self.fit(Y[rows])

    def transform_rows(self, Y, rows) -> np.ndarray:
        """Map some rows of the scored targets to learner targets.

        Parameters
        ----------
        Y
            The scored targets of all rows (dense or CSR).
        rows
            The rows to map (indices, or a slice).

        Returns
        -------
        numpy.ndarray
            Learner targets of ``rows`` (float32).
        """
        return self.transform(Y[rows])

    @property
    def basis(self) -> TargetBasis | None:
        """The linear map from predictions to the scored targets (None: predictions are the targets)."""
        return None

    @property
    def learner_basis(self) -> TargetBasis | None:
        """The map from learner outputs to the scored targets, for learners that take their loss there."""
        return None

    def basis_targets(self, Y, rows) -> RowSubset | np.ndarray:
        """What :attr:`learner_basis` maps the learner targets of ``rows`` onto, for a loss taken there.

        Parameters
        ----------
        Y
            The scored targets of all rows (dense or CSR).
        rows
            The rows a learner fits.

        Returns
        -------
        RowSubset or numpy.ndarray
            By default the scored targets of ``rows``, read on demand.
        """
        return RowSubset(Y, rows)

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
