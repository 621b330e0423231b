"""Fitting the cis correction of a Multiome blend (the model is in :mod:`mmscel.blend.cis`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.blend.cis import CisMap, corrected_scores, prediction_moments
from mmscel.features.blockops import default_threads
from mmscel.features.compute import row_blocks
from mmscel.targets.base import TargetBasis

GENE_BUDGET = 20_000_000  # cells x genes x M, and peaks x genes, held dense at a time while fitting


def projected_residuals(
    predictions: np.ndarray, basis: TargetBasis | None, truth: sp.csr_matrix
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """The error the correction fits: each cell's centred genes less their projection on its standardised prediction.

    ``r_cg = (y_cg - mean_c(y)) - a_c z(p)_cg`` with ``a_c = mean_g((y_cg - mean_c(y)) z(p)_cg)``, the
    per-cell least-squares slope: what of a cell's genes its prediction's shape leaves unexplained, in
    the genes' own units.

    Parameters
    ----------
    predictions
        The rows' predictions (coefficients with ``basis``, else genes).
    basis
        The target basis, or None.
    truth
        The rows' genes (CSR).

    Returns
    -------
    tuple
        ``genes -> rows x len(genes)`` float64; and each row's slope ``a_c``.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    p_mean, p_sd = prediction_moments(predictions, basis)
    p_sd = np.where(p_sd > 0, p_sd, 1.0)  # a constant prediction has no shape to project on
    truth = sp.csr_matrix(truth)  # kept in its own dtype: values are widened a chunk of genes at a time
    n_genes = truth.shape[1]
    y_sum, y_dot_p = _row_moments(truth, predictions, basis)
    y_mean = y_sum / n_genes
    slope = (y_dot_p / n_genes - y_mean * p_mean) / p_sd
    columns = truth.tocsc()

    def residual(genes: np.ndarray) -> np.ndarray:
        if basis is None:
            p = predictions[:, genes]
        else:
            p = predictions @ np.asarray(basis.components[:, genes], dtype=np.float64) + basis.mean[genes]
        shape = (p - p_mean[:, None]) / p_sd[:, None]
        return columns[:, genes].toarray().astype(np.float64) - y_mean[:, None] - slope[:, None] * shape

    return residual, slope


def _row_moments(truth: sp.csr_matrix, predictions: np.ndarray, basis: TargetBasis | None):
    """Each row's ``sum(y)`` and ``y . p`` (``p = z V + m`` with a basis), in float64 a block of rows at a time.

    scipy sums a float32 matrix in float32; widening one block at a time keeps that precision without a
    float64 copy of ``truth``.
    """
    sums, dots = np.empty(truth.shape[0]), np.empty(truth.shape[0])
    if basis is not None:
        V, mean = np.asarray(basis.components, np.float64), np.asarray(basis.mean, np.float64)
    for start, stop in row_blocks(truth):
        block, p = truth[start:stop].astype(np.float64), predictions[start:stop]
        sums[start:stop] = np.asarray(block.sum(axis=1)).ravel()
        if basis is None:
            dots[start:stop] = np.asarray(block.multiply(p).sum(axis=1)).ravel()
        else:
            dots[start:stop] = np.einsum("ck,ck->c", block @ V.T, p) + block @ mean
    return sums, dots


def fit_cis_map(
    inputs: sp.csr_matrix,
    residual: Callable[[np.ndarray], np.ndarray],
    n_genes: int,
    peaks_per_gene: int,
    alpha: float,
    selection_cells: int,
    seed: int = 0,
) -> CisMap:
    """Choose each gene's peaks and fit their ridge weights on the rows of ``inputs``.

    Parameters
    ----------
    inputs
        Fitted cells x peaks.
    residual
        ``genes -> cells x genes``: the error to fit, rows as in ``inputs``.
    n_genes
        Number of genes.
    peaks_per_gene
        ``M``.
    alpha
        Ridge penalty of each gene's fit.
    selection_cells
        At most this many cells (drawn with ``seed``) rank the peaks.
    seed
        Seed of that draw.

    Returns
    -------
    CisMap
    """
    single = np.zeros(inputs.shape[0], np.int64)
    options = {"peaks_per_gene": peaks_per_gene, "alpha": alpha, "selection_cells": selection_cells, "seed": seed}
    return fit_cis_maps(inputs, residual, single, {0: [0]}, n_genes, **options)[0]


def fit_cis_maps(
    inputs: sp.csr_matrix,
    residual: Callable[[np.ndarray], np.ndarray],
    groups: np.ndarray,
    fits: dict[Hashable, list],
    n_genes: int,
    peaks_per_gene: int,
    alpha: float,
    selection_cells: int,
    seed: int = 0,
    threads: int | None = None,
) -> dict[Hashable, CisMap]:
    """Choose each gene's peaks and fit their ridge weights, for several sets of cells in one pass.

    Each fit ranks the peaks on its cells among ``selection_cells`` cells drawn once (with ``seed``)
    from all the rows, and fits the weights on all its cells. Ranking is the costly step (a sparse
    product of peaks x genes per ranking cell); it is computed once per group, its genes split
    between ``threads`` threads, and summed per fit, so cross-fitting ``F`` folds costs one ranking, not
    ``F + 1``. With one group and one fit this is :func:`fit_cis_map`. The maps do not depend on
    ``threads``.

    Parameters
    ----------
    inputs
        Cells x peaks.
    residual
        ``genes -> cells x genes``: the error to fit, rows as in ``inputs``.
    groups
        Group label of each row.
    fits
        Key -> the group labels whose cells that fit uses.
    n_genes, peaks_per_gene, alpha, selection_cells, seed
        As in :func:`fit_cis_map` (the ranking cells drawn from all the rows).
    threads
        Threads of the ranking product (None: the cores this process may use).

    Returns
    -------
    dict
        Key of ``fits`` -> its :class:`CisMap` (not yet divided by the slope).
    """
    opened = (inputs > 0).tocsc()  # bool: exact, and a quarter of float32's memory a value
    n_cells, n_peaks = opened.shape
    ranked = np.zeros(n_cells, bool)
    ranked[_draw_rows(n_cells, selection_cells, seed)] = True
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    rankers = {g: rows[ranked[rows]] for g, rows in members.items()}
    ranking = {g: sp.csr_matrix(opened[rows].T, dtype=np.float64) for g, rows in rankers.items()}  # peaks x cells
    open_counts = {g: np.asarray(matrix.sum(axis=1)).ravel() for g, matrix in ranking.items()}
    rows_of = {key: np.sort(np.concatenate([members[g] for g in gs])) for key, gs in fits.items()}
    spread_of = {
        key: _spread(sum(open_counts[g] for g in gs), sum(len(rankers[g]) for g in gs)) for key, gs in fits.items()
    }
    m = peaks_per_gene
    chunk = int(max(1, min(n_genes, GENE_BUDGET // max(1, n_cells * m, n_peaks * (len(members) + 3)))))
    maps = {key: (np.zeros((n_genes, m), np.int64), np.zeros((n_genes, m)), np.zeros(n_genes)) for key in fits}
    threads = threads or default_threads()
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, n_genes, chunk):
            genes = np.arange(start, min(n_genes, start + chunk))
            error = residual(genes)
            sums = {g: error[rows].sum(axis=0) for g, rows in members.items()}
            cross = _products(pool, threads, ranking, {g: error[rows] for g, rows in rankers.items()})  # peaks x genes
            for key, gs in fits.items():
                rows = rows_of[key]
                centre = sum(sums[g] for g in gs) / len(rows)
                moment = sum(cross[g] for g in gs) - np.outer(sum(open_counts[g] for g in gs), centre)
                chosen = _strongest(moment, spread_of[key], m)
                peaks, weights, offset = maps[key]
                peaks[genes] = chosen
                weights[genes], offset[genes] = _ridge(opened, rows, chosen, error[rows] - centre, alpha)
    return {key: CisMap(*arrays) for key, arrays in maps.items()}


def _strongest(moment: np.ndarray, spread: np.ndarray, m: int) -> np.ndarray:
    """Genes x ``m``: each gene's peaks of largest ``|moment| / spread`` (~|correlation|) from peaks x genes."""
    score = np.divide(np.abs(moment).T, spread, out=np.empty(moment.shape[::-1]))  # a gene's scores contiguous
    return np.argpartition(score, -m, axis=1)[:, -m:]


def _products(pool: ThreadPoolExecutor, threads: int, ranking: dict, errors: dict) -> dict:
    """``ranking[g] @ errors[g]`` for every group, the genes split between the pool's threads.

    scipy's sparse product runs on one core and releases the GIL; each task writes its own columns,
    so the result does not depend on the number of threads.
    """
    out = {g: np.empty((matrix.shape[0], errors[g].shape[1])) for g, matrix in ranking.items()}

    def one(task):
        g, columns = task
        out[g][:, columns] = ranking[g] @ np.ascontiguousarray(errors[g][:, columns])

    tasks = [(g, part) for g in ranking for part in np.array_split(np.arange(errors[g].shape[1]), threads) if len(part)]
    for _ in pool.map(one, tasks):
        pass
    return out


def _draw_rows(n_cells: int, at_most: int, seed: int) -> np.ndarray:
    """At most ``at_most`` of ``n_cells`` rows, drawn with ``seed``, in order (all of them if fewer)."""
    if n_cells <= at_most:
        return np.arange(n_cells)
    return np.sort(np.random.default_rng(seed).choice(n_cells, at_most, replace=False))


def _spread(open_counts: np.ndarray, n_ranking: int) -> np.ndarray:
    """Each peak's standard deviation over the ranking cells; infinite for one open in none or all of them
    (never chosen)."""
    frequency = open_counts / max(1, n_ranking)
    spread = np.sqrt(frequency * (1 - frequency))
    spread[spread == 0] = np.inf
    return spread


def fit_blend_cis(
    inputs: sp.csr_matrix,
    predictions: np.ndarray,
    basis: TargetBasis | None,
    truth: sp.csr_matrix,
    *,
    rows: np.ndarray | None = None,
    fit_cells: int | None = None,
    **options,
) -> CisMap:
    """The correction of a blend's predictions, fitted on these cells and divided by their mean slope.

    Parameters
    ----------
    inputs, predictions, truth
        The cells' peaks, out-of-fold predictions (coefficients with ``basis``) and genes.
    basis
        The target basis, or None.
    rows
        The rows of ``inputs`` and ``truth`` that hold the predictions' cells, in their order (None: the
        same rows as ``predictions``); only the fitted cells' rows are copied.
    fit_cells
        At most this many of the cells (drawn with ``seed``) are fitted on; None: all. The fit holds
        their peaks and genes column by column, so this bounds its memory.
    **options
        ``peaks_per_gene``, ``alpha``, ``selection_cells``, ``seed`` of :func:`fit_cis_map`.

    Returns
    -------
    CisMap
        Ready to add as ``sd_c(p) * correction`` (see :mod:`mmscel.blend.cis`).
    """
    take, take_rows = _drawn(len(predictions), fit_cells, options.get("seed", 0), rows)
    residual, slopes = projected_residuals(take(predictions), basis, take_rows(truth))
    return _divided(fit_cis_map(take_rows(inputs), residual, truth.shape[1], **options), slopes)


def _drawn(n_cells: int, at_most: int | None, seed: int, rows: np.ndarray | None = None) -> tuple[Callable, Callable]:
    """One draw of at most ``at_most`` of ``n_cells`` cells (seeded; all of them if fewer), as two selections.

    The first takes the drawn cells of an array of the ``n_cells`` cells, uncopied when it keeps them all;
    the second their ``rows`` of a matrix (None: as the first).
    """
    drawn = None if at_most is None or n_cells <= at_most else _draw_rows(n_cells, at_most, seed)
    if rows is not None and drawn is not None:
        rows = rows[drawn]

    def take(values):
        return values if drawn is None else values[drawn]

    def take_rows(values):
        return take(values) if rows is None else values[rows]

    return take, take_rows


def _divided(fitted: CisMap, slopes: np.ndarray) -> CisMap:
    """A map divided by its cells' mean slope; predictions with no positive slope get no correction."""
    slope = float(slopes.mean())
    return fitted.scaled(1 / slope if slope > 0 else 0.0)


def _ridge(opened: sp.csc_matrix, rows: np.ndarray, chosen: np.ndarray, error: np.ndarray, alpha: float):
    """Each gene's ridge weights on its chosen peaks (centred over ``rows``), and the offset that centres the fit."""
    genes, m = chosen.shape
    design = opened[:, chosen.ravel()][rows].toarray().astype(np.float64).reshape(len(rows), genes, m)
    centre = design.mean(axis=0)
    design -= centre
    gram = np.einsum("cgm,cgk->gmk", design, design) + alpha * np.eye(m)
    weights = np.linalg.solve(gram, np.einsum("cgm,cg->gm", design, error)[..., None])[..., 0]
    return weights, -np.einsum("gm,gm->g", centre, weights)


@dataclass(frozen=True)
class CrossFittedCis:
    """The correction fitted on every cell, the ones fitted without each fold, and their honest gain.

    Attributes
    ----------
    full
        Fitted on every cell (applied to the test cells).
    by_fold
        Fold label -> fitted on the cells of the other folds (applied to that fold's cells).
    base, corrected
        Mean per-cell Pearson of the folds' cells without and with their fold's correction.
    """

    full: CisMap
    by_fold: dict[int, CisMap]
    base: float
    corrected: float

    @property
    def gain(self) -> float:
        """``corrected - base``: what the correction adds on cells it was not fitted on."""
        return self.corrected - self.base


def cross_fit_cis(
    inputs: sp.csr_matrix,
    predictions: np.ndarray,
    basis: TargetBasis | None,
    truth: sp.csr_matrix,
    folds: np.ndarray,
    *,
    peaks_per_gene: int,
    alpha: float,
    selection_cells: int,
    fit_cells: int | None = None,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> CrossFittedCis | None:
    """Fit the correction on every cell and, for each fold, on the other folds' cells, scoring the held-out fold.

    All the fits share one ranking pass (:func:`fit_cis_maps`): each fold's map is the one
    :func:`fit_blend_cis` would fit on the other folds' cells, except that with more than
    ``selection_cells`` cells it ranks on its cells among one draw from all of them.

    Parameters
    ----------
    inputs, predictions, truth
        The validated cells' peaks, out-of-fold predictions (coefficients with ``basis``) and genes.
    basis
        The target basis, or None.
    folds
        Fold label of each cell (-1: in no fold, fitted on only).
    peaks_per_gene, alpha, selection_cells, seed
        As in :func:`fit_cis_map`.
    fit_cells
        As in :func:`fit_blend_cis` (one draw for all the fits); the held-out scores are over every cell.
    rows
        As in :func:`fit_blend_cis`: ``inputs`` and ``truth`` may be the whole training set.

    Returns
    -------
    CrossFittedCis or None
        None with fewer than two folds (nothing to validate it on).
    """
    fold_ids = [int(f) for f in np.unique(folds) if f >= 0]
    if len(fold_ids) < 2:
        return None
    options = {"peaks_per_gene": peaks_per_gene, "alpha": alpha, "selection_cells": selection_cells, "seed": seed}
    take, take_rows = _drawn(len(folds), fit_cells, seed, rows)
    residual, slopes = projected_residuals(take(predictions), basis, take_rows(truth))
    fitted_folds = take(folds)
    groups = [int(g) for g in np.unique(fitted_folds)]
    fits = {fold: [g for g in groups if g != fold] for fold in fold_ids}
    maps = fit_cis_maps(take_rows(inputs), residual, fitted_folds, {**fits, "full": groups}, truth.shape[1], **options)
    del residual  # its genes by column: the held-out scores need the memory
    by_fold, base, corrected = {}, [], []
    for fold in fold_ids:
        held = np.flatnonzero(folds == fold)
        by_fold[fold] = _divided(maps[fold], slopes[fitted_folds != fold])
        cells = (inputs, predictions[held], basis, truth, held if rows is None else rows[held])
        base.append(corrected_scores(None, *cells))
        corrected.append(corrected_scores(by_fold[fold], *cells))
    full = _divided(maps["full"], slopes)
    return CrossFittedCis(full, by_fold, float(np.concatenate(base).mean()), float(np.concatenate(corrected).mean()))
