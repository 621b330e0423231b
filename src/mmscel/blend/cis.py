"""The cis correction of a Multiome blend: each gene's remaining error from the few peaks that track it.

A low-rank target basis shares every gene's prediction across a few programs, so it cannot
say that *this* cell has a fragment in a peak that regulates *this* gene. The correction adds,
per gene ``g``, a ridge fit of the blend's out-of-fold error on the binarised accessibility of
the ``M`` peaks most correlated with that error::

    r_cg = (y_cg - mean_c(y)) - a_c z(p)_cg  ~  sum_j w_gj [x_c,p_gj > 0] + b_g

where ``z(p)_c`` is cell ``c``'s prediction standardised over its genes and ``a_c`` the per-cell
least-squares slope of its genes on it. The per-cell Pearson of ``a_c z(p) + r`` equals that of
``z(p) + r / a_c``; with ``a`` the mean slope of the fitted cells, the corrected prediction is
``p_cg + sd_c(p) * correction_cg / a``, the same per-cell Pearson as ``z(p) + correction / a``.
Peaks are ranked on at most ``selection_cells`` cells (the sparse product that ranks them costs
peaks x genes per cell; a cross-fit computes it once for all its fits); the weights are fitted on
at most ``fit_cells`` cells (their peaks and genes are held column by column); ``b_g`` centres the
correction on the fitted cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.targets.base import TargetBasis

ROW_CHUNK = 2048  # cells corrected at a time


@dataclass(frozen=True)
class CisMap:
    """Per gene, ``M`` peaks, their weights and an offset.

    Attributes
    ----------
    peaks
        Genes x M, the input column of each peak (int64).
    weights
        Genes x M, float64.
    offset
        One per gene, float64.
    """

    peaks: np.ndarray
    weights: np.ndarray
    offset: np.ndarray

    def at(self, inputs: sp.csr_matrix, cells: np.ndarray, genes: np.ndarray) -> np.ndarray:
        """The correction at (cell, gene) pairs.

        Parameters
        ----------
        inputs
            Cells x peaks (any non-negative accessibility; only ``> 0`` counts).
        cells, genes
            Row of ``inputs`` and gene of each pair.

        Returns
        -------
        numpy.ndarray
            One float64 value per pair.
        """
        out = self.offset[genes].astype(np.float64)
        for j in range(self.peaks.shape[1]):
            opened = np.asarray(inputs[cells, self.peaks[genes, j]]).ravel() > 0
            out += opened * self.weights[genes, j]
        return out

    def dense(self, inputs: sp.csr_matrix) -> np.ndarray:
        """The correction of every gene of every row of ``inputs`` (rows x genes, float64)."""
        out = np.tile(self.offset, (inputs.shape[0], 1))
        for j in range(self.peaks.shape[1]):  # one peak a gene at a time: rows x genes held, never x M
            out += (inputs[:, self.peaks[:, j]] > 0).toarray() * self.weights[:, j]
        return out

    def scaled(self, factor: float) -> CisMap:
        """The same correction times ``factor``."""
        return CisMap(self.peaks, self.weights * factor, self.offset * factor)

    def to_array(self) -> np.ndarray:
        """Genes x (2M + 1) float64: the peaks, the weights, the offset (one ``.npy`` file)."""
        return np.hstack([self.peaks.astype(np.float64), self.weights, self.offset[:, None]])

    @classmethod
    def from_array(cls, array: np.ndarray) -> CisMap:
        """The map packed by :meth:`to_array`."""
        m = (array.shape[1] - 1) // 2
        return cls(array[:, :m].astype(np.int64), array[:, m : 2 * m].copy(), array[:, 2 * m].copy())


def prediction_moments(values: np.ndarray, basis: TargetBasis | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and standard deviation of the genes predicted by ``values``, without reconstructing them.

    Parameters
    ----------
    values
        Coefficients (rows x components) when ``basis`` is given, else the genes themselves.
    basis
        The map from coefficients to genes, or None.

    Returns
    -------
    tuple of numpy.ndarray
        Mean and standard deviation of each row's genes (float64).
    """
    values = np.asarray(values, dtype=np.float64)
    if basis is None:
        return values.mean(axis=1), values.std(axis=1)
    V = np.asarray(basis.components, dtype=np.float64)
    m = np.asarray(basis.mean, dtype=np.float64)
    n_genes = V.shape[1]
    mean = values @ V.mean(axis=1) + m.mean()
    second = np.einsum("ck,kl,cl->c", values, V @ V.T / n_genes, values) + 2 * values @ (V @ m) / n_genes
    second += m @ m / n_genes
    return mean, np.sqrt(np.maximum(second - mean**2, 0.0))


def corrected_scores(
    cis: CisMap | None,
    inputs: sp.csr_matrix,
    predictions: np.ndarray,
    basis: TargetBasis | None,
    truth,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Per-cell Pearson of the predictions with the correction (or without, when ``cis`` is None).

    Parameters
    ----------
    cis
        The correction, or None.
    inputs, predictions, truth
        The cells' peaks, predictions (coefficients with ``basis``) and genes (CSR).
    basis
        The target basis, or None.
    rows
        The rows of ``inputs`` and ``truth`` that hold the predictions' cells, in their order (None: the
        same rows as ``predictions``); they are read a chunk at a time, never copied whole.

    Returns
    -------
    numpy.ndarray
        One score per cell of ``predictions``.
    """
    from mmscel.metrics import pearson_per_row

    scores = np.empty(predictions.shape[0])
    for start in range(0, predictions.shape[0], ROW_CHUNK):
        cells = slice(start, start + ROW_CHUNK)
        at = cells if rows is None else rows[cells]
        values = predictions[cells] if basis is None else basis.reconstruct(predictions[cells])
        values = np.asarray(values, dtype=np.float64)
        if cis is not None:
            _, sd = prediction_moments(predictions[cells], basis)
            values = values + sd[:, None] * cis.dense(inputs[at])
        scores[cells] = pearson_per_row(truth[at].toarray(), values)
    return scores


def opened_peaks(inputs: sp.csr_matrix) -> sp.csr_matrix:
    """Whether each peak is open (``> 0``), as a bool CSR that shares the index arrays of ``inputs``.

    The correction reads nothing else of the accessibility, and one byte a stored value instead of
    four keeps a quarter of the values' memory (the full Multiome training inputs: 4.6 GiB -> 2.7 GiB
    with the shared indices). Stored zeros stay as stored ``False``, which every ``> 0`` test ignores.

    Parameters
    ----------
    inputs
        Cells x peaks, non-negative.

    Returns
    -------
    scipy.sparse.csr_matrix
    """
    inputs = sp.csr_matrix(inputs)
    return sp.csr_matrix((inputs.data > 0, inputs.indices, inputs.indptr), shape=inputs.shape)


@dataclass(frozen=True)
class AppliedCis:
    """Corrections bound to the cells they correct: their peaks, their predictions' spread, which map each takes.

    Attributes
    ----------
    maps
        The corrections.
    which
        Per cell, the index of its map in ``maps`` (-1: no correction).
    inputs
        The cells' peaks (CSR).
    spread
        Per cell, the standard deviation of its predicted genes (the maps are already divided by the
        fitted cells' mean slope; 0 for a cell without predictions).
    """

    maps: list[CisMap]
    which: np.ndarray
    inputs: sp.csr_matrix
    spread: np.ndarray

    def at(self, cells: np.ndarray, genes: np.ndarray) -> np.ndarray:
        """What to add at (cell, gene) pairs (float64)."""
        out = np.zeros(len(cells))
        for index, cis in enumerate(self.maps):
            hit = np.flatnonzero(self.which[cells] == index)
            if hit.size:
                out[hit] = self.spread[cells[hit]] * cis.at(self.inputs, cells[hit], genes[hit])
        return out

    def rows(self, start: int, stop: int) -> np.ndarray:
        """What to add to every gene of cells ``start:stop`` (rows x genes, float64)."""
        out = np.zeros((stop - start, self.maps[0].peaks.shape[0]))
        which = self.which[start:stop]
        for index, cis in enumerate(self.maps):
            hit = np.flatnonzero(which == index)
            if hit.size:
                out[hit] = self.spread[start + hit, None] * cis.dense(self.inputs[start + hit])
        return out


def apply_cis(
    maps: list[CisMap], which: np.ndarray, inputs: sp.csr_matrix, predictions: np.ndarray, basis: TargetBasis | None
) -> AppliedCis:
    """Bind corrections to cells (see :class:`AppliedCis`).

    Parameters
    ----------
    maps
        The corrections, already divided by the fitted cells' mean slope.
    which
        Per cell, the index of its map (-1: none).
    inputs
        The cells' peaks.
    predictions
        The cells' predictions (coefficients with ``basis``, else genes).
    basis
        The target basis, or None.

    Returns
    -------
    AppliedCis
    """
    finite = np.isfinite(predictions).all(axis=1)
    spread = np.zeros(len(predictions))
    spread[finite] = prediction_moments(predictions[finite], basis)[1]
    return AppliedCis(maps, np.where(finite, which, -1), sp.csr_matrix(inputs), spread)
