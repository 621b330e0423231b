"""dsb normalisation of protein counts without empty droplets (dsb's ``ModelNegativeADTnorm``).

Mulè, Martins & Tsang, "Normalizing and denoising protein expression data
from droplet-based single cell profiling", Nature Communications 13, 2099
(2022), https://doi.org/10.1038/s41467-022-29356-8. The competition's hosts
normalised its proteins with dsb; an AnnData holds no empty droplets, so the
background of each protein is modelled from the cells themselves, as the
dsb package's ``ModelNegativeADTnorm`` does.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits


def dsb(counts: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """dsb-normalised proteins from raw counts, without empty droplets or isotype controls.

    Each mixture has two Gaussian components, of equal or of separate
    variances, whichever fits better by BIC (as dsb's ``mclust`` fits choose).
    Step I (ambient background): per protein, a mixture over the cells'
    ``log1p`` counts; the mean of its lower (background) component is
    subtracted, so that a protein's background sits near 0 and its positive
    cells above it. Step II (cell-to-cell technical noise): per cell, a
    mixture over that cell's step-I values; the mean of the lower component
    (``mu1``, the cell's background level) is the noise covariate, and each
    protein's least-squares slope on ``mu1`` across cells (intercept kept)
    times ``mu1`` is removed.

    As in ``ModelNegativeADTnorm``, step I centres on the background mean and
    does not divide by the background's standard deviation: a protein whose
    background is a spike of zero counts has a fitted deviation near 0, and
    dividing by it would inflate that protein a thousandfold.

    The fit reads the whole matrix at once (all cells, every protein): protein
    panels are small (at most a few hundred proteins), unlike the RNA and ATAC
    matrices, which are processed in row chunks.

    Parameters
    ----------
    counts : numpy.ndarray
        Cells x proteins raw counts (whole non-negative numbers), all cells of the dataset.
    seed : int
        Seed of every mixture, so that the result is deterministic.

    Returns
    -------
    numpy.ndarray
        Cells x proteins float32 dsb values.
    """
    values = np.log1p(np.asarray(counts, dtype=np.float64))
    if values.ndim != 2 or values.size == 0:
        return values.astype(np.float32)
    # many tiny fits: threads cost more than they give, most of all on a busy machine
    with threadpool_limits(limits=1):
        centres = np.array([background_mean(column, seed) for column in values.T])
        ambient = values - centres
        mu1 = np.array([background_mean(row, seed) for row in ambient])
    return (ambient - np.outer(mu1, _slopes(ambient, mu1))).astype(np.float32)


def background_mean(values: np.ndarray, seed: int = 0) -> float:
    """Mean of the lower component of a two-component Gaussian mixture fitted to ``values``.

    The mixture's components share one variance or have their own, whichever has the lower BIC.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional sample (a protein across cells, or a cell across proteins).
    seed : int
        Seed of the mixture's initialisation.

    Returns
    -------
    float
        The background mean (the same for any order of ``values``); the plain mean when
        ``values`` hold fewer than two distinct numbers.
    """
    # sorted, so that the seeded initialisation sees the same sample whatever the order of cells or proteins
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if np.unique(values).size < 2:
        return float(values.mean()) if values.size else 0.0
    sample = values[:, None]
    with warnings.catch_warnings():
        # a mixture stopped at its iteration limit still tells the background mode from the positive one
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = [GaussianMixture(2, covariance_type=kind, random_state=seed).fit(sample) for kind in ("tied", "full")]
    best = min(fits, key=lambda mixture: mixture.bic(sample))
    return float(best.means_.min())


def _slopes(values: np.ndarray, covariate: np.ndarray) -> np.ndarray:
    """Least-squares slope of each column of ``values`` on ``covariate`` (with an intercept)."""
    centred = covariate - covariate.mean()
    spread = float(centred @ centred)
    if spread <= 0.0:
        return np.zeros(values.shape[1])
    return centred @ (values - values.mean(axis=0)) / spread
