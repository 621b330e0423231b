"""Fitting the cis correction of a Multiome blend (the model is in :mod:`mmscel.blend.cis`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.blend.cis import CisMap, corrected_scores, prediction_moments
from mmscel.targets.base import TargetBasis

GENE_BUDGET = 20_000_000  # cells x genes x M, and peaks x genes, held dense at a time while fitting


def projected_residuals(
    predictions: np.ndarray, basis: TargetBasis | None, truth: sp.csr_matrix
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
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
        ``genes -> rows x len(genes)`` float64; and the mean slope over the rows.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    p_mean, p_sd = prediction_moments(predictions, basis)
    p_sd = np.where(p_sd > 0, p_sd, 1.0)  # a constant prediction has no shape to project on
    truth = sp.csr_matrix(truth, dtype=np.float64)
    n_genes = truth.shape[1]
    y_mean = np.asarray(truth.sum(axis=1)).ravel() / n_genes
    if basis is None:
        y_dot_p = np.asarray(truth.multiply(predictions).sum(axis=1)).ravel()
    else:
        V = np.asarray(basis.components, dtype=np.float64)
        y_dot_p = np.einsum("ck,ck->c", truth @ V.T, predictions) + truth @ np.asarray(basis.mean, np.float64)
    slope = (y_dot_p / n_genes - y_mean * p_mean) / p_sd
    columns = truth.tocsc()

    def residual(genes: np.ndarray) -> np.ndarray:
        if basis is None:
            p = predictions[:, genes]
        else:
            p = predictions @ np.asarray(basis.components[:, genes], dtype=np.float64) + basis.mean[genes]
        shape = (p - p_mean[:, None]) / p_sd[:, None]
        return columns[:, genes].toarray() - y_mean[:, None] - slope[:, None] * shape

    return residual, float(slope.mean())


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
    opened = sp.csc_matrix(inputs > 0, dtype=np.float64)
    n_cells, m = opened.shape[0], peaks_per_gene
    rank_rows = np.arange(n_cells)
    if n_cells > selection_cells:
        rank_rows = np.sort(np.random.default_rng(seed).choice(n_cells, selection_cells, replace=False))
    ranking = opened[rank_rows]
    frequency = np.asarray(ranking.mean(axis=0)).ravel()
    spread = np.sqrt(frequency * (1 - frequency))
    spread[spread == 0] = np.inf  # a peak open in none or all of the ranking cells is never chosen
    chunk = int(max(1, min(n_genes, GENE_BUDGET // max(1, n_cells * m, opened.shape[1]))))
    peaks = np.zeros((n_genes, m), np.int64)
    weights = np.zeros((n_genes, m))
    offset = np.zeros(n_genes)
    for start in range(0, n_genes, chunk):
        genes = np.arange(start, min(n_genes, start + chunk))
        error = residual(genes)
        error -= error.mean(axis=0)
        score = np.abs(ranking.T @ error[rank_rows]) / spread[:, None]  # peaks x genes, ~|correlation|
        chosen = np.argpartition(-score, m - 1, axis=0)[:m].T
        peaks[genes] = chosen
        weights[genes], offset[genes] = _ridge(opened, chosen, error, alpha)
    return CisMap(peaks, weights, offset)


def fit_blend_cis(
    inputs: sp.csr_matrix, predictions: np.ndarray, basis: TargetBasis | None, truth: sp.csr_matrix, **options
) -> CisMap:
    """The correction of a blend's predictions, fitted on these cells and divided by their mean slope.

    Parameters
    ----------
    inputs, predictions, truth
        The cells' peaks, out-of-fold predictions (coefficients with ``basis``) and genes.
    basis
        The target basis, or None.
    **options
        ``peaks_per_gene``, ``alpha``, ``selection_cells``, ``seed`` of :func:`fit_cis_map`.

    Returns
    -------
    CisMap
        Ready to add as ``sd_c(p) * correction`` (see :mod:`mmscel.blend.cis`).
    """
    residual, slope = projected_residuals(predictions, basis, truth)
    fitted = fit_cis_map(inputs, residual, truth.shape[1], **options)
    return fitted.scaled(1 / slope if slope > 0 else 0.0)  # predictions with no positive slope: no correction


def _ridge(opened: sp.csc_matrix, chosen: np.ndarray, error: np.ndarray, alpha: float):
    """Each gene's ridge weights on its chosen peaks (centred), and the offset that centres the fit."""
    n_cells = opened.shape[0]
    genes, m = chosen.shape
    design = opened[:, chosen.ravel()].toarray().reshape(n_cells, genes, m)
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
    seed: int = 0,
) -> CrossFittedCis | None:
    """Fit the correction on every cell and, for each fold, on the other folds' cells, scoring the held-out fold.

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

    Returns
    -------
    CrossFittedCis or None
        None with fewer than two folds (nothing to validate it on).
    """
    fold_ids = [int(f) for f in np.unique(folds) if f >= 0]
    if len(fold_ids) < 2:
        return None
    options = {"peaks_per_gene": peaks_per_gene, "alpha": alpha, "selection_cells": selection_cells, "seed": seed}

    def fit(rows: np.ndarray) -> CisMap:
        return fit_blend_cis(inputs[rows], predictions[rows], basis, truth[rows], **options)

    by_fold, base, corrected = {}, [], []
    for fold in fold_ids:
        held, rest = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        by_fold[fold] = fit(rest)
        base.append(corrected_scores(None, inputs[held], predictions[held], basis, truth[held]))
        corrected.append(corrected_scores(by_fold[fold], inputs[held], predictions[held], basis, truth[held]))
    full = fit(np.arange(len(folds)))
    return CrossFittedCis(full, by_fold, float(np.concatenate(base).mean()), float(np.concatenate(corrected).mean()))
