"""Batch-level context features (a batch is a donor x day): computed from the inputs, for train and test batches alike.

Each cell gets columns describing its batch as a whole: an SVD of the
batches' median expression, or the batch's composition in cell types. Both
read the inputs of every cell (train and test, as the input SVD does) and
never the targets, so a test batch has them as a training batch does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmscel.data import layout
from mmscel.errors import InputError

MAX_CLASSIFIER_CELLS = 20_000  # training cells the cell-type classifier sees at most
COLUMN_NNZ = 2**24  # stored values sorted at a time when taking column medians


def batch_medians(matrix: sp.csr_matrix, batches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per batch, the median of each column's non-zero values (0 for a column without any in the batch).

    Parameters
    ----------
    matrix
        Cells x features, CSR.
    batches
        The batch of each row.

    Returns
    -------
    tuple of numpy.ndarray
        The sorted batch labels, and batches x features medians (float32).
    """
    labels, codes = np.unique(np.asarray(batches), return_inverse=True)
    out = np.zeros((len(labels), matrix.shape[1]), np.float32)
    for k in range(len(labels)):
        out[k] = column_nonzero_medians(matrix[np.flatnonzero(codes == k)].tocsc())
    return labels, out


def column_nonzero_medians(matrix: sp.csc_matrix) -> np.ndarray:
    """Median of the stored values of each column of a CSC matrix, sorted a block of columns at a time.

    Parameters
    ----------
    matrix
        Rows x columns, CSC.

    Returns
    -------
    numpy.ndarray
        One median per column (the mean of the two middle values for an even count; 0 without values).
    """
    out = np.zeros(matrix.shape[1], np.float32)
    indptr = matrix.indptr
    start = 0
    while start < matrix.shape[1]:
        stop = int(np.searchsorted(indptr, indptr[start] + COLUMN_NNZ, side="right")) - 1
        stop = min(max(stop, start + 1), matrix.shape[1])
        lo, hi = indptr[start], indptr[stop]
        counts = np.diff(indptr[start : stop + 1])
        values = matrix.data[lo:hi]
        ordered = values[np.lexsort((values, np.repeat(np.arange(stop - start), counts)))]
        first = indptr[start:stop] - lo
        if len(ordered):
            low = ordered[np.minimum(first + np.maximum(counts - 1, 0) // 2, len(ordered) - 1)]
            high = ordered[np.minimum(first + counts // 2, len(ordered) - 1)]
            out[start:stop] = np.where(counts > 0, (low.astype(np.float64) + high) / 2, 0.0)
        start = stop
    return out


def batch_svd(matrix: sp.csr_matrix, batches: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """Each cell's batch, described by an SVD of the batches' median expression (columns z-scored over batches).

    Parameters
    ----------
    matrix
        Cells x features (train then test), CSR.
    batches
        The batch of each row.
    n_components
        Components wanted, capped at one less than the number of batches (at least 1).
    seed
        ``random_state`` of the SVD.

    Returns
    -------
    numpy.ndarray
        Cells x components, float32: the row of the cell's batch.
    """
    labels, medians = batch_medians(matrix, batches)
    rank = max(1, min(n_components, len(labels) - 1, medians.shape[1] - 1))
    scores = TruncatedSVD(n_components=rank, algorithm="randomized", random_state=seed).fit_transform(medians)
    scores = (scores - scores.mean(axis=0)) / np.maximum(scores.std(axis=0), 1e-12)
    return scores[np.searchsorted(labels, batches)].astype(np.float32)


def predicted_cell_types(
    scores: np.ndarray, cell_types: pd.Series, n_train: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cell-type probabilities of every cell, from a classifier fitted on the training cells' known types.

    Parameters
    ----------
    scores
        Cells x components (train then test): the input SVD, before any batch centring.
    cell_types
        The cells' metadata ``cell_type`` (train then test); missing, empty or hidden types are unknown.
    n_train
        Training cells (the leading rows); only they teach the classifier.
    seed
        Seed of the subsample of training cells the classifier sees.

    Returns
    -------
    tuple of numpy.ndarray
        The type names (sorted), and cells x types probabilities (float32).

    Raises
    ------
    InputError
        When fewer than two cell types are known among the training cells.
    """
    types = cell_types.astype("string").fillna("").to_numpy().astype(str)
    known = np.flatnonzero((types[:n_train] != "") & (types[:n_train] != layout.HIDDEN_CELL_TYPE))
    if len(np.unique(types[known])) < 2:
        raise InputError("features.batch_cell_types", "needs at least two cell types in the training cells' metadata")
    if len(known) > MAX_CLASSIFIER_CELLS:
        known = np.sort(np.random.default_rng(seed).choice(known, MAX_CLASSIFIER_CELLS, replace=False))
    scaler = StandardScaler().fit(scores[known])
    model = LogisticRegression(max_iter=500).fit(scaler.transform(scores[known]), types[known])
    return model.classes_, model.predict_proba(scaler.transform(scores)).astype(np.float32)


def batch_means(values: np.ndarray, batches: np.ndarray) -> np.ndarray:
    """Each cell's batch mean of ``values``.

    Parameters
    ----------
    values
        Cells x columns.
    batches
        The batch of each row.

    Returns
    -------
    numpy.ndarray
        Cells x columns, float32.
    """
    _, codes = np.unique(np.asarray(batches), return_inverse=True)
    sums = np.zeros((codes.max() + 1, values.shape[1]))
    np.add.at(sums, codes, values)
    return (sums / np.bincount(codes)[:, None])[codes].astype(np.float32)
