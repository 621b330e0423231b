"""The blend objective: the per-cell Pearson of a weighted blend of standardised predictions.

Each run's prediction of a cell is z-scored across its targets before
weighting. For weights ``w`` the blended cell scores

    r_c(w) = (w . h_c) / sqrt(w' G_c w),

with ``G_c[i, j]`` the mean product of runs i and j's standardised
predictions and ``h_c[i]`` the mean product of run i's standardised
prediction with the standardised truth. Both are precomputed once, so a
trial costs O(cells x runs^2) whatever the number of targets.

For Multiome runs that predict target-SVD coefficients ``z`` (genes
``z @ V``), the statistics are computed exactly in component space from
``V V'``, the column means of ``V``, and per cell ``Y V'``, sum(y) and
sum(y^2): the 23,418-gene matrix is never reconstructed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.learners.base import TargetBasis
from mmscel.metrics import standardize_rows
from mmscel.targets.moments import BasisMoments, GeneMoments

_EPS = 1e-12


@dataclass
class CellStatistics:
    """Per-cell sufficient statistics of a set of runs against the truth.

    Attributes
    ----------
    gram
        ``G`` (cells x runs x runs): mean products of the runs' standardised predictions.
    cross
        ``h`` (cells x runs): mean products of each run's standardised prediction with the standardised truth.
    """

    gram: np.ndarray
    cross: np.ndarray

    def per_cell(self, weights: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Score a blend cell by cell.

        Parameters
        ----------
        weights
            One weight per run.
        rows
            Cells to score (None: all).

        Returns
        -------
        numpy.ndarray
            The Pearson correlation of each cell's blend with its truth; 0 where the blend is constant.
        """
        gram = self.gram if rows is None else self.gram[rows]
        cross = self.cross if rows is None else self.cross[rows]
        w = np.asarray(weights, dtype=np.float64)
        numerator = cross @ w
        variance = np.einsum("i,cij,j->c", w, gram, w)
        return np.where(variance > _EPS, numerator / np.sqrt(np.maximum(variance, _EPS)), 0.0)

    def score(self, weights: np.ndarray, rows: np.ndarray | None = None) -> float:
        """Score a blend over cells.

        Parameters
        ----------
        weights
            As in :meth:`per_cell`.
        rows
            Cells to average over (None: all).

        Returns
        -------
        float
            The mean per-cell Pearson over ``rows`` (None: all cells).
        """
        return float(self.per_cell(weights, rows).mean())

    def normal_equations(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The least-squares system of the standardised truth on the standardised predictions.

        Parameters
        ----------
        rows
            Cells to sum over (None: all).

        Returns
        -------
        tuple of numpy.ndarray
            ``G`` (runs x runs) and ``h`` (runs), summed over the cells.
        """
        gram = self.gram if rows is None else self.gram[rows]
        cross = self.cross if rows is None else self.cross[rows]
        return gram.sum(axis=0), cross.sum(axis=0)


def dense_statistics(predictions: list[np.ndarray], truth: np.ndarray, chunk: int = 4096) -> CellStatistics:
    """Statistics of runs predicting the scored targets directly (CITEseq proteins).

    Parameters
    ----------
    predictions
        Each run's predictions (cells x targets).
    truth
        The scored targets (cells x targets).
    chunk
        Cells handled at a time.

    Returns
    -------
    CellStatistics
        ``G`` and ``h`` of every cell.
    """
    n = len(truth)
    gram = np.empty((n, len(predictions), len(predictions)))
    cross = np.empty((n, len(predictions)))
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        t = standardize_rows(truth[part])
        s = np.stack([standardize_rows(p[part]) for p in predictions], axis=1)  # cells x runs x targets
        width = t.shape[1]
        gram[part] = np.einsum("cit,cjt->cij", s, s) / width
        cross[part] = np.einsum("cit,ct->ci", s, t) / width
    return CellStatistics(gram, cross)


def component_statistics(
    coefficients: list[np.ndarray], truth: np.ndarray | sp.csr_matrix, basis: TargetBasis
) -> CellStatistics:
    """Exact statistics of runs predicting target-SVD coefficients, computed in component space.

    Gene-space prediction of run i for cell c: ``z_ic @ V + m`` (``m`` the basis
    mean). Its per-cell mean, variance and covariance with the truth follow from
    ``V V'``, ``V`` and ``m``, and the truth's ``Y V'``, ``Y m``, sum(y), sum(y^2).

    Parameters
    ----------
    coefficients
        Each run's coefficients (cells x components).
    truth
        The scored genes (cells x genes, dense or CSR), read in row chunks.
    basis
        The map from coefficients to genes.

    Returns
    -------
    CellStatistics
        ``G`` and ``h`` of every cell, as the gene-space predictions would give them.
    """
    terms = BasisMoments.of(basis)
    vvt, v_mean, vm, m_mean, m_sq = terms.vvt, terms.v_mean, terms.vm, terms.m_mean, terms.m_sq
    moments = GeneMoments.of(truth, basis)
    y_sum, y_sq, y_proj, y_m = moments.mean, moments.sq, moments.proj, moments.dot_m
    y_sd = np.sqrt(np.maximum(y_sq - y_sum**2, 0.0))
    z = [np.asarray(c, dtype=np.float64) for c in coefficients]
    means = [zi @ v_mean + m_mean for zi in z]  # per-cell mean of each run's genes
    linear = [zi @ vm for zi in z]
    runs = len(z)
    second = np.empty((runs, runs, len(y_sum)))  # per-cell mean product of runs i and j's genes
    for i in range(runs):
        zi_vvt = z[i] @ vvt
        for j in range(i, runs):
            second[i, j] = second[j, i] = np.einsum("ck,ck->c", zi_vvt, z[j]) + linear[i] + linear[j] + m_sq
    sds = [np.sqrt(np.maximum(second[i, i] - means[i] ** 2, 0.0)) for i in range(runs)]
    gram = np.empty((len(y_sum), runs, runs))
    cross = np.empty((len(y_sum), runs))
    for i in range(runs):
        covariance = np.einsum("ck,ck->c", z[i], y_proj) + y_m - means[i] * y_sum
        cross[:, i] = _ratio(covariance, sds[i] * y_sd)
        for j in range(runs):
            gram[:, i, j] = _ratio(second[i, j] - means[i] * means[j], sds[i] * sds[j])
    return CellStatistics(gram, cross)


def _ratio(numerator, denominator):
    return np.where(denominator > _EPS, numerator / np.where(denominator > _EPS, denominator, 1.0), 0.0)


def blend_dense(predictions: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Blend runs that predict the scored targets.

    Parameters
    ----------
    predictions
        Each run's predictions (cells x targets).
    weights
        One weight per run.

    Returns
    -------
    numpy.ndarray
        The weighted sum of the per-cell standardised predictions, float32.
    """
    return sum(w * standardize_rows(p) for w, p in zip(weights, predictions)).astype(np.float32)


def blend_components(coefficients: list[np.ndarray], basis: TargetBasis, weights: np.ndarray) -> np.ndarray:
    """Blend in component space: coefficients whose genes equal the standardised blend up to a per-cell shift.

    ``sum_i w_i (z_i V + m - mu_i) / sd_i = (sum_i w_i z_i / sd_i) V + (...)``
    per cell, and the per-cell Pearson ignores the shift. This needs a
    zero-mean basis (mmscel's target SVD has one).

    Parameters
    ----------
    coefficients
        Each run's coefficients (cells x components).
    basis
        The map from coefficients to genes.
    weights
        One weight per run.

    Returns
    -------
    numpy.ndarray
        The blended coefficients (cells x components, float32).

    Raises
    ------
    ValueError
        When ``basis`` has a nonzero mean.
    """
    if np.any(basis.mean != 0):
        raise ValueError("blending in component space needs a zero-mean target basis")
    V = np.asarray(basis.components, dtype=np.float64)
    n_genes = V.shape[1]
    vvt, v_mean = V @ V.T / n_genes, V.mean(axis=1)
    blended = np.zeros_like(np.asarray(coefficients[0], dtype=np.float64))
    for w, z in zip(weights, coefficients):
        z = np.asarray(z, dtype=np.float64)
        mean = z @ v_mean
        sd = np.sqrt(np.maximum(np.einsum("ck,kl,cl->c", z, vvt, z) - mean**2, 0.0))
        blended += w * z / np.where(sd > _EPS, sd, 1.0)[:, None]
    return blended.astype(np.float32)
