"""The feature computations on sparse matrices: truncated SVD, transforms, cell statistics, selected genes.

Inputs stay sparse all the way to the SVD; per-cell statistics walk row
blocks, so their temporaries stay small at the full Multiome size (0.9
billion non-zeros).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.features.randomized_svd import RandomizedSVD
from mmscel.targets.rows import sparse_row_medians

QUANTILES = (0.25, 0.5, 0.75)


def first_rows(matrix: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    """The first ``n_rows`` rows of a CSR matrix as a view (no copy of the values).

    Parameters
    ----------
    matrix
        A CSR matrix.
    n_rows
        How many leading rows to keep (the training cells of the stacked inputs).

    Returns
    -------
    scipy.sparse.csr_matrix
        A matrix sharing ``data``, ``indices`` and ``indptr`` with ``matrix``.
    """
    end = matrix.indptr[n_rows]
    view = sp.csr_matrix((n_rows, matrix.shape[1]), dtype=matrix.dtype)
    # Assigned, not passed to the constructor: scipy copies a slice that is under half of its base array.
    view.data, view.indices, view.indptr = matrix.data[:end], matrix.indices[:end], matrix.indptr[: n_rows + 1]
    return view


def svd_rank(wanted: int, matrix) -> int:
    """The components an SVD of ``matrix`` can give: ``wanted``, at most one fewer than its smaller side."""
    return max(1, min(wanted, min(matrix.shape) - 1))


def truncated_svd(matrix: sp.csr_matrix, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Randomized truncated SVD of a sparse matrix on all cores: (scores, components), float32.

    scikit-learn's ``TruncatedSVD(algorithm="randomized")`` settings (5 power iterations, 10
    oversamples), with its products in threaded row blocks
    (:class:`mmscel.features.randomized_svd.RandomizedSVD`); its power iterations report progress.

    Parameters
    ----------
    matrix
        Rows x columns, sparse or dense (a CSR is reordered in place during the fit and given back unchanged).
    n_components
        Components wanted, capped at one less than the smaller dimension (at least 1).
    seed
        ``random_state`` of the randomized solver.

    Returns
    -------
    tuple of numpy.ndarray
        Scores (rows x k) and components (k x columns).
    """
    rank = svd_rank(n_components, matrix)
    description = f"SVD {rank} of {matrix.shape[0]:,} x {matrix.shape[1]:,}: power iterations"
    svd = RandomizedSVD(rank, random_state=seed, description=description)
    scores = svd.fit_transform(matrix)
    return scores.astype(np.float32), svd.components_.astype(np.float32)


def transform(matrix: sp.csr_matrix, steps: list[str], copy: bool = True) -> sp.csr_matrix:
    """Binarise, log1p, row-L2- or row-median-normalise a sparse matrix, in the given order (sparsity kept).

    With ``copy=False`` the values of ``matrix`` are changed in place; a copy
    shares the column indices and row pointer of ``matrix`` (only the values are new).

    Parameters
    ----------
    matrix
        The CSR matrix to transform.
    steps
        ``"binarize"`` (stored values set to 1), ``"log1p"``, ``"l2"`` (each row scaled to unit norm;
        empty rows stay empty), ``"row_median"`` (each row divided by the median of its stored values,
        a row-quantile normalisation), applied in the order given.
    copy
        Work on a copy of the values rather than on ``matrix`` itself.

    Returns
    -------
    scipy.sparse.csr_matrix
        The transformed matrix (``matrix`` itself when ``steps`` is empty or ``copy`` is false).
    """
    out = (
        sp.csr_matrix((matrix.data.copy(), matrix.indices, matrix.indptr), shape=matrix.shape, copy=False)
        if steps and copy
        else matrix
    )
    for step in steps:
        if step == "binarize":
            out.data[:] = 1.0
        elif step == "log1p":
            np.log1p(out.data, out=out.data)
        elif step == "row_median":
            _divide_by_row_medians(out)
        elif step == "l2":
            for start, stop in row_blocks(out):
                values = out.data[out.indptr[start] : out.indptr[stop]]  # a view: scaled in place
                counts = np.diff(out.indptr[start : stop + 1])
                rows = np.repeat(np.arange(stop - start), counts)
                norms = np.sqrt(np.bincount(rows, weights=np.square(values, dtype=np.float64), minlength=stop - start))
                values *= np.repeat(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32), counts)
    return out


def _divide_by_row_medians(matrix: sp.csr_matrix) -> None:
    for start, stop in row_blocks(matrix):
        lo, hi = matrix.indptr[start], matrix.indptr[stop]
        block = sp.csr_matrix(
            (matrix.data[lo:hi], matrix.indices[lo:hi], matrix.indptr[start : stop + 1] - lo),
            shape=(stop - start, matrix.shape[1]),
        )
        median = sparse_row_medians(block)
        scale = (1.0 / np.where(median > 0, median, 1.0)).astype(np.float32)  # rows without a positive median kept
        matrix.data[lo:hi] *= np.repeat(scale, np.diff(block.indptr))


def row_blocks(matrix: sp.csr_matrix, max_nnz: int = 2**24):
    """(start, stop) row ranges of a CSR matrix holding about ``max_nnz`` non-zeros each.

    Per-cell statistics walk these blocks so that their temporaries stay small
    (the full Multiome inputs hold 0.9 billion non-zeros).

    Parameters
    ----------
    matrix
        A CSR matrix; the block height comes from its mean non-zeros per row.
    max_nnz
        Non-zeros a block should hold about.

    Yields
    ------
    tuple of (int, int)
        The first row of a block and the row after its last; nothing for a matrix without rows.
    """
    n_rows = matrix.shape[0]
    if n_rows == 0:
        return
    per_row = max(1, int(matrix.indptr[-1]) // n_rows)
    step = max(1, max_nnz // per_row)
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


STAT_NAMES = ["stat:nonzero_ratio", "stat:mean", "stat:std"] + [f"stat:nonzero_q{int(q * 100)}" for q in QUANTILES]


def cell_stats(matrix: sp.csr_matrix) -> np.ndarray:
    """Per-cell technical statistics: non-zero ratio, mean, std and quantiles of the non-zero values.

    Parameters
    ----------
    matrix
        Cells x features, sparse.

    Returns
    -------
    numpy.ndarray
        Cells x ``len(STAT_NAMES)``, float32, in the order of ``STAT_NAMES``; the quantiles are the
        lower order statistics of the stored values, 0 for a cell without any.
    """
    matrix = matrix.tocsr()
    out = np.empty((matrix.shape[0], len(STAT_NAMES)), np.float32)
    for start, stop in row_blocks(matrix):
        out[start:stop] = _block_stats(matrix[start:stop], matrix.shape[1])
    return out


def _block_stats(block: sp.csr_matrix, n_cols: int) -> np.ndarray:
    counts = np.diff(block.indptr)
    sums = np.asarray(block.sum(axis=1)).ravel()
    squares = np.asarray(block.multiply(block).sum(axis=1)).ravel()
    mean = sums / n_cols
    std = np.sqrt(np.maximum(squares / n_cols - mean**2, 0.0))
    rows = np.repeat(np.arange(block.shape[0]), counts)
    ordered = block.data[np.lexsort((block.data, rows))]
    quantiles = []
    for q in QUANTILES:
        position = block.indptr[:-1] + np.floor(q * np.maximum(counts - 1, 0)).astype(np.int64)
        quantiles.append(
            np.where(counts > 0, ordered[np.minimum(position, max(len(ordered) - 1, 0))] if len(ordered) else 0.0, 0.0)
        )
    return np.column_stack([counts / n_cols, mean, std, *quantiles])


def chromosome_ratios(matrix: sp.csr_matrix, peaks: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per-cell share of non-zero peaks on each chromosome (contigs pooled as 'other').

    Parameters
    ----------
    matrix
        Cells x peaks, CSR.
    peaks
        The peak names (``chr1:100-200``); names not starting with ``chr`` count as ``other``.

    Returns
    -------
    tuple of (list of str, numpy.ndarray)
        ``chrom:<chromosome>`` column names (sorted) and the shares, cells x chromosomes, float32.
    """
    chromosome = np.array([str(p).split(":")[0].split("-")[0] for p in peaks], dtype=object)
    chromosome = np.where(np.char.startswith(chromosome.astype(str), "chr"), chromosome, "other")
    names, codes = np.unique(chromosome, return_inverse=True)
    indicator = sp.csr_matrix(
        (np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)), shape=(len(codes), len(names))
    )
    hits = np.empty((matrix.shape[0], len(names)), np.float32)
    for start, stop in row_blocks(matrix):
        present = matrix[start:stop]
        present.data[:] = 1.0
        hits[start:stop] = (present @ indicator).toarray()
    ratios = hits / np.maximum(np.bincount(codes, minlength=len(names)), 1)
    return [f"chrom:{n}" for n in names], ratios.astype(np.float32)


def selected_genes(train_inputs: sp.csr_matrix, train, config) -> np.ndarray:
    """Input columns kept raw: genes named after a target protein, and the top-k correlated per target.

    Parameters
    ----------
    train_inputs
        The training cells' inputs (cells x genes).
    train
        The training split: its ``input_names`` (``<id>_<gene>``), ``target_names``, and ``targets``
        when correlated genes are asked for.
    config
        The CITEseq feature config (``protein_genes``, ``top_correlated_genes``).

    Returns
    -------
    numpy.ndarray
        Sorted int64 column indices, without repeats.
    """
    chosen: set[int] = set()
    if config.protein_genes:
        proteins = set(train.target_names)
        chosen |= {i for i, name in enumerate(train.input_names) if str(name).split("_", 1)[-1] in proteins}
    if config.top_correlated_genes:
        corr = sparse_correlation(train_inputs, train.targets)
        top = np.argsort(-np.abs(np.nan_to_num(corr)), axis=0)[: config.top_correlated_genes]
        chosen |= set(top.ravel().tolist())
    return np.asarray(sorted(chosen), dtype=np.int64)


def sparse_correlation(X: sp.csr_matrix, Y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of sparse ``X`` with every column of dense ``Y`` (genes x targets).

    Parameters
    ----------
    X
        Cells x genes, CSR; read in row blocks.
    Y
        Cells x targets, the same cells in the same order.

    Returns
    -------
    numpy.ndarray
        Genes x targets, float64; not finite where a column of ``X`` or ``Y`` is constant.
    """
    n = X.shape[0]
    Y = np.asarray(Y, dtype=np.float64)
    y_centred = Y - Y.mean(axis=0)
    x_sum, x_sq, cov = np.zeros(X.shape[1]), np.zeros(X.shape[1]), np.zeros((X.shape[1], Y.shape[1]))
    for start, stop in row_blocks(X):
        block = X[start:stop].astype(np.float64)
        x_sum += np.asarray(block.sum(axis=0)).ravel()
        x_sq += np.asarray(block.multiply(block).sum(axis=0)).ravel()
        cov += np.asarray(block.T @ y_centred[start:stop])
    x_mean = x_sum / n
    x_sd = np.sqrt(np.maximum(x_sq / n - x_mean**2, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cov / n) / (x_sd[:, None] * Y.std(axis=0)[None, :])


def centre_by_group(values: np.ndarray, metadata: pd.DataFrame) -> np.ndarray:
    """Subtract each (donor, day) group's median (a per-batch correction).

    Parameters
    ----------
    values
        Cells x columns.
    metadata
        One row per cell of ``values``, with ``donor`` and ``day`` columns.

    Returns
    -------
    numpy.ndarray
        A centred copy of ``values``.
    """
    out = values.copy()
    groups = metadata["donor"].astype(str) + "_" + metadata["day"].astype(str)
    for _, rows in groups.groupby(groups).indices.items():
        out[rows] -= np.median(values[rows], axis=0)
    return out


def female(metadata: pd.DataFrame) -> np.ndarray:
    """Donor sex as a 0/1 column (the competition's donor 13176 is female; other datasets get 0).

    Parameters
    ----------
    metadata
        The cells' metadata, with a ``donor`` column.

    Returns
    -------
    numpy.ndarray
        Cells x 1, float32: 1 for the female donor's cells.
    """
    return (metadata["donor"].astype(str).to_numpy() == str(layout.FEMALE_DONOR)).astype(np.float32)[:, None]
