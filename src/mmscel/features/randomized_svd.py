"""Randomized truncated SVD whose matrix products run on all cores, in row blocks, in bounded memory.

The algorithm is scikit-learn's ``randomized_svd`` (Halko, Martinsson and
Tropp 2011, algorithms 4.3-4.4 and 5.1): a Gaussian test matrix, power
iterations re-normalised by LU or QR, an orthonormal basis of the range, and
the SVD of the matrix projected on it; with the same settings and seed it
draws the same test matrix. Only the products with the matrix differ: they
are :class:`mmscel.features.blockops.RowBlocks`' threaded row-block products
(never a dense copy of the whole matrix), so the result is scikit-learn's up
to float rounding and is the same for any number of threads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
from sklearn.utils.extmath import svd_flip

from mmscel.features.blockops import RowBlocks
from mmscel.progress import track


def _normalizer(kind: str, n_iter: int) -> Callable[[np.ndarray], np.ndarray]:
    if kind == "auto":
        kind = "none" if n_iter <= 2 else "LU"
    if kind == "LU":
        return lambda X: scipy.linalg.lu(X, permute_l=True, check_finite=False)[0]
    if kind == "QR":
        return _orthonormal
    if kind == "none":
        return lambda X: X
    raise ValueError(f"power_iteration_normalizer must be 'auto', 'LU', 'QR' or 'none', not {kind!r}")


def _orthonormal(X: np.ndarray) -> np.ndarray:
    return scipy.linalg.qr(X, mode="economic", check_finite=False)[0]


def range_finder(
    forward: Callable[[np.ndarray], np.ndarray],
    adjoint: Callable[[np.ndarray], np.ndarray],
    n_columns: int,
    size: int,
    n_iter: int,
    power_iteration_normalizer: str = "auto",
    random_state: int | np.random.RandomState | None = 0,
    dtype=np.float32,
    description: str | None = None,
) -> np.ndarray:
    """An orthonormal basis of the range of a matrix ``M`` known by its products (Halko et al., algorithm 4.4).

    Parameters
    ----------
    forward, adjoint
        ``X -> M @ X`` and ``Y -> M.T @ Y``.
    n_columns
        Columns of ``M`` (rows of the Gaussian test matrix).
    size
        Columns of the basis.
    n_iter
        Power iterations (each one product with ``M`` and one with ``M.T``).
    power_iteration_normalizer
        ``"auto"`` (none up to 2 iterations, else LU), ``"LU"``, ``"QR"`` or ``"none"``, as in scikit-learn.
    random_state
        Seed (or ``RandomState``) of the test matrix, drawn as scikit-learn draws it.
    dtype
        The working float type.
    description
        Label of the power iterations' progress (None: silent).

    Returns
    -------
    numpy.ndarray
        Rows of ``M`` x ``size``, orthonormal columns.
    """
    rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    normalize = _normalizer(power_iteration_normalizer, n_iter)
    Q = rng.normal(size=(n_columns, size)).astype(dtype, copy=False)
    for _ in track(range(n_iter), description or "", enabled=description is not None):
        Q = normalize(forward(Q))
        Q = normalize(adjoint(Q))
    return _orthonormal(forward(Q))


def randomized_svd(
    matrix,
    n_components: int,
    *,
    n_oversamples: int = 10,
    n_iter: int | str = "auto",
    power_iteration_normalizer: str = "auto",
    transpose: bool | str = "auto",
    random_state: int | np.random.RandomState | None = 0,
    threads: int | None = None,
    description: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truncated SVD ``U, s, Vt`` of a sparse or dense matrix, as scikit-learn's ``randomized_svd``.

    Signs follow scikit-learn's ``TruncatedSVD``: the largest entry of each row of ``Vt`` is positive.

    Parameters
    ----------
    matrix
        Rows x columns: CSR (float32 stays float32) or a dense array. A CSR is reordered in place during
        the call and given back unchanged (:class:`mmscel.features.blockops.RowBlocks`).
    n_components
        Singular triplets wanted.
    n_oversamples, n_iter, power_iteration_normalizer, transpose, random_state
        As in scikit-learn (``n_iter="auto"``: 7 when ``n_components`` is under a tenth of the smaller
        dimension, else 4; ``transpose="auto"``: work on ``matrix.T`` when it is wider than tall).
    threads
        Threads of the products (None: all cores this process may use). The result does not depend on it.
    description
        Label of the power iterations' progress (None: silent).

    Returns
    -------
    tuple of numpy.ndarray
        ``U`` (rows x k), ``s`` (k, non-increasing) and ``Vt`` (k x columns).
    """
    with RowBlocks(matrix, threads) as blocks:
        return _svd(
            blocks,
            n_components,
            n_oversamples=n_oversamples,
            n_iter=n_iter,
            power_iteration_normalizer=power_iteration_normalizer,
            transpose=transpose,
            random_state=random_state,
            description=description,
        )


def _svd(
    blocks: RowBlocks,
    n_components: int,
    *,
    n_oversamples: int,
    n_iter: int | str,
    power_iteration_normalizer: str,
    transpose: bool | str,
    random_state,
    description: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_cols = blocks.shape
    if n_iter == "auto":
        n_iter = 7 if n_components < 0.1 * min(n_rows, n_cols) else 4
    if transpose == "auto":
        transpose = n_rows < n_cols
    forward, adjoint = (blocks.rmatmat, blocks.matmat) if transpose else (blocks.matmat, blocks.rmatmat)
    size = n_components + n_oversamples
    width = n_rows if transpose else n_cols
    Q = range_finder(
        forward, adjoint, width, size, n_iter, power_iteration_normalizer, random_state, blocks.dtype, description
    )
    B = adjoint(Q).T  # Q.T @ M
    Uhat, s, Vt = scipy.linalg.svd(B, full_matrices=False, check_finite=False)
    U = Q @ Uhat
    if transpose:
        U, Vt = Vt.T, U.T
    U, Vt = svd_flip(U[:, :n_components], Vt[:n_components], u_based_decision=False)
    return U, s[:n_components], Vt


class RandomizedSVD:
    """Randomized truncated SVD with the interface of scikit-learn's ``TruncatedSVD(algorithm="randomized")``.

    Its products with the matrix run on all cores in row blocks (see :func:`randomized_svd`).

    Parameters
    ----------
    n_components
        Components to keep.
    n_iter
        Power iterations (scikit-learn's ``TruncatedSVD`` default: 5).
    n_oversamples
        Extra columns of the test matrix.
    power_iteration_normalizer
        ``"auto"``, ``"LU"``, ``"QR"`` or ``"none"``.
    random_state
        Seed of the test matrix.
    threads
        Threads of the products (None: all cores); the result does not depend on it.
    description
        Label of the power iterations' progress (None: silent).

    Attributes
    ----------
    components_ : numpy.ndarray
        Components x columns.
    singular_values_, explained_variance_, explained_variance_ratio_ : numpy.ndarray
        Per component, as in scikit-learn (variances of the training scores, over the total column variance).
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        n_iter: int = 5,
        n_oversamples: int = 10,
        power_iteration_normalizer: str = "auto",
        random_state: int | None = 0,
        threads: int | None = None,
        description: str | None = None,
    ):
        self.n_components, self.n_iter, self.n_oversamples = n_components, n_iter, n_oversamples
        self.power_iteration_normalizer, self.random_state = power_iteration_normalizer, random_state
        self.threads, self.description = threads, description

    def fit(self, X) -> RandomizedSVD:
        """Fit on ``X`` (rows x columns, CSR or dense)."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X) -> np.ndarray:
        """Fit on ``X`` and return its scores ``X @ components_.T`` (rows x components)."""
        with RowBlocks(X, self.threads) as blocks:
            _, s, Vt = _svd(
                blocks,
                self.n_components,
                n_oversamples=self.n_oversamples,
                n_iter=self.n_iter,
                power_iteration_normalizer=self.power_iteration_normalizer,
                transpose="auto",
                random_state=self.random_state,
                description=self.description,
            )
            scores = blocks.matmat(Vt.T)  # not U * s: the projection is what transform() gives for new rows
            sums, squares = blocks.column_moments()
        n_rows = blocks.shape[0]
        total = squares / n_rows - float(np.square(sums / n_rows).sum())
        self.components_, self.singular_values_ = Vt, s
        self.explained_variance_ = np.var(scores, axis=0)
        self.explained_variance_ratio_ = self.explained_variance_ / total
        return scores

    def transform(self, X) -> np.ndarray:
        """Scores of new rows: ``X @ components_.T``, in threaded row blocks."""
        with RowBlocks(X, self.threads, reorder=False) as blocks:
            return blocks.matmat(self.components_.T)
