"""The input SVD of a sparse matrix whose zeros are filled by a low-rank reconstruction, never made dense.

The iterative SVD imputer replaces every zero of ``X`` by the value of a rank-k
reconstruction ``L = (X V^T) V`` (V: the top-k right singular vectors of X),
and may repeat with the SVD of the filled matrix. The filled matrix is
``S + A B`` with ``S`` sparse (X's pattern; its stored values ``X - L``) and
``A B`` of rank k, so its products with thin dense matrices cost one sparse
product and two small dense ones: a randomized SVD of it needs no dense copy.
For inputs the result is centred by its column means before the final SVD (a
PCA of the filled matrix); for the Multiome targets it is not, as their SVD
is an uncentred one whose coefficients the learners fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from mmscel.features.compute import row_blocks

PRODUCT_NNZ = 2**17  # stored values whose low-rank values are formed at a time (x the rank, as float32)


@dataclass
class SparsePlusLowRank:
    """The matrix ``S + A @ B - 1 mean^T``, kept as its parts.

    Attributes
    ----------
    sparse
        ``S``, CSR (rows x columns).
    left, right
        ``A`` (rows x k) and ``B`` (k x columns), float32.
    mean
        Subtracted from every row (columns), float32; zeros when not centred.
    """

    sparse: sp.csr_matrix
    left: np.ndarray
    right: np.ndarray
    mean: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns."""
        return self.sparse.shape

    def dot(self, Q: np.ndarray) -> np.ndarray:
        """``M @ Q`` for a thin dense ``Q`` (columns x l)."""
        return np.asarray(self.sparse @ Q) + self.left @ (self.right @ Q) - (self.mean @ Q)[None, :]

    def rdot(self, P: np.ndarray) -> np.ndarray:
        """``M.T @ P`` for a thin dense ``P`` (rows x l)."""
        return np.asarray(self.sparse.T @ P) + self.right.T @ (self.left.T @ P) - np.outer(self.mean, P.sum(axis=0))

    def column_means(self) -> np.ndarray:
        """The column means of ``S + A B`` (the centring ignored)."""
        totals = np.asarray(self.sparse.sum(axis=0)).ravel() + self.left.sum(axis=0) @ self.right
        return (totals / self.shape[0]).astype(np.float32)


def randomized_svd(matrix: SparsePlusLowRank, k: int, seed: int, oversamples: int = 10, power_iterations: int = 5):
    """Scores and components of a rank-``k`` randomized SVD of an implicit matrix (Halko et al.).

    Parameters
    ----------
    matrix
        The matrix, through its products.
    k
        Rank, capped at one less than the smaller dimension (at least 1).
    seed
        Seed of the random start.
    oversamples, power_iterations
        Extra random directions, and power iterations (as scikit-learn's randomized solver).

    Returns
    -------
    tuple of numpy.ndarray
        Scores ``U S`` (rows x k) and components ``V^T`` (k x columns), float32; each component's
        largest entry positive.
    """
    k = max(1, min(k, min(matrix.shape) - 1))
    width = min(k + oversamples, min(matrix.shape))
    Q = np.random.default_rng(seed).standard_normal((matrix.shape[1], width)).astype(np.float32)
    for _ in range(power_iterations):  # LU-normalised, as scikit-learn's solver (a QR each time is slower)
        Q = scipy.linalg.lu(matrix.dot(Q), permute_l=True, check_finite=False)[0]
        Q = scipy.linalg.lu(matrix.rdot(Q), permute_l=True, check_finite=False)[0]
    Q, _ = np.linalg.qr(matrix.dot(Q))
    u, s, vt = np.linalg.svd(matrix.rdot(Q).T, full_matrices=False)
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    scores = (Q @ u[:, :k]) * (s[:k] * signs)[None, :]
    return scores.astype(np.float32), (vt * signs[:, None]).astype(np.float32)


def subtract_at_stored(matrix: sp.csr_matrix, left: np.ndarray, right: np.ndarray, sign: float = 1.0) -> None:
    """``matrix.data -= sign * (left @ right)`` at the stored positions of ``matrix``, in place, in row blocks.

    Parameters
    ----------
    matrix
        CSR with writable float32 values.
    left, right
        Rows x k and k x columns.
    sign
        1 to subtract, -1 to add.
    """
    right_t = np.ascontiguousarray(right.T)
    for start, stop in row_blocks(matrix, PRODUCT_NNZ):
        lo, hi = matrix.indptr[start], matrix.indptr[stop]
        rows = np.repeat(np.arange(start, stop), np.diff(matrix.indptr[start : stop + 1]))
        values = np.einsum("ij,ij->i", left[rows], right_t[matrix.indices[lo:hi]])
        matrix.data[lo:hi] -= (sign * values).astype(matrix.data.dtype)


def imputed_svd(
    matrix: sp.csr_matrix, n_components: int, impute_components: int, iterations: int, seed: int, centred: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The SVD of ``matrix`` with its zeros imputed by an iterative rank-``impute_components`` SVD.

    Parameters
    ----------
    matrix
        Cells x features, CSR; its stored values are changed in place (callers pass inputs they no longer need).
    n_components
        Components of the final SVD.
    impute_components
        Rank of the reconstructions that fill the zeros.
    iterations
        Rounds of imputation (each an SVD of the matrix filled so far).
    seed
        Seed of the randomized SVDs.
    centred
        Centre the filled matrix's columns before the final SVD (a PCA); else its plain SVD.

    Returns
    -------
    tuple of numpy.ndarray
        Scores (cells x k) and components (k x features), float32.
    """
    matrix.data = matrix.data.astype(np.float32, copy=False)
    n_cols = matrix.shape[1]
    empty = np.zeros((matrix.shape[0], 0), np.float32), np.zeros((0, n_cols), np.float32)
    filled = SparsePlusLowRank(matrix, *empty, np.zeros(n_cols, np.float32))
    for round_ in range(iterations):
        _, right = randomized_svd(filled, impute_components, seed + 100 + round_)
        left = filled.dot(right.T).astype(np.float32)  # the reconstruction (M V^T) V, as the imputer has it
        subtract_at_stored(matrix, filled.left, filled.right, sign=-1.0)  # back to X at the stored positions
        subtract_at_stored(matrix, left, right)
        filled = SparsePlusLowRank(matrix, left, right, np.zeros(n_cols, np.float32))
    if centred:
        filled.mean = filled.column_means()
    return randomized_svd(filled, n_components, seed)
