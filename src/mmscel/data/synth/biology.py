"""The simulated biology: a differentiation tree that matures with the day.

A cell's state is its lineage (one of six branches out of the HSC root), its
pseudotime ``t`` in [0, 1], its donor, a cycling score, and its technical
sizes (RNA library, ADT and ATAC depth). Gene programs are smooth, nonlinear
functions of that state; every modality is a function of the programs plus
donor effects and count noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmscel.data import layout

LINEAGES = layout.CELL_TYPES[1:]  # EryP, NeuP, MasP, MkP, BP, MoP
BASE_LINEAGE_MIX = np.array([0.30, 0.22, 0.08, 0.15, 0.07, 0.18])
# Mean pseudotime by day: later days hold more mature cells, and the last days
# (7 for CITEseq's private test, 10 for Multiome's) lie beyond any training day
# of their task.
MATURITY_BY_DAY = {2: 0.22, 3: 0.3, 4: 0.38, 7: 0.6, 10: 0.72}
MATURITY_CONCENTRATION = 8.0
COMMIT_TIME, COMMIT_WIDTH = 0.28, 0.06
MATURE_TIME, MATURE_WIDTH = 0.62, 0.08
N_PROGRAMS = 3 + 2 * len(LINEAGES)


@dataclass(frozen=True)
class Donors:
    """Per-donor lineage mix; donor effects on features live with each modality.

    Attributes
    ----------
    ids : tuple of int
        The donors, in the order of the per-donor tables.
    lineage_mix : numpy.ndarray
        Donors x lineages: each donor's share of cells per lineage.
    """

    ids: tuple[int, ...]
    lineage_mix: np.ndarray  # donors x lineages

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Donors:
        """Draw each donor's lineage mix around the base mix.

        Parameters
        ----------
        rng : numpy.random.Generator
            The donors' random stream.

        Returns
        -------
        Donors
            The competition's four donors.
        """
        mix = np.stack([rng.dirichlet(60 * BASE_LINEAGE_MIX) for _ in layout.DONORS])
        return cls(ids=layout.DONORS, lineage_mix=mix)

    def index(self, donor: np.ndarray) -> np.ndarray:
        """Row of each donor id in per-donor tables.

        Parameters
        ----------
        donor : numpy.ndarray
            Donor ids, one per cell.

        Returns
        -------
        numpy.ndarray
            int64 rows.
        """
        lookup = {d: i for i, d in enumerate(self.ids)}
        return np.fromiter((lookup[int(d)] for d in donor), dtype=np.int64, count=len(donor))


def sample_states(
    rng: np.random.Generator, donors: Donors, donor: np.ndarray, day: np.ndarray, base_library: float
) -> pd.DataFrame:
    """Draw the latent state of cells with the given donors and days.

    Parameters
    ----------
    rng : numpy.random.Generator
        The states' random stream.
    donors : Donors
        Lineage mix of each donor.
    donor, day : numpy.ndarray
        Donor id and day of each cell.
    base_library : float
        Expected RNA counts of a day-2 cell.

    Returns
    -------
    pandas.DataFrame
        One row per cell: lineage (0-5), t (pseudotime), cycling, library
        (expected RNA counts), adt_depth, atac_depth, cell_type.
    """
    n = len(donor)
    donor_row = donors.index(donor)
    lineage = np.array([rng.choice(len(LINEAGES), p=donors.lineage_mix[d]) for d in donor_row], dtype=np.int64)
    mean_t = np.array([MATURITY_BY_DAY[int(d)] for d in day])
    t = rng.beta(mean_t * MATURITY_CONCENTRATION, (1 - mean_t) * MATURITY_CONCENTRATION)
    day_factor = np.exp(-0.07 * (np.asarray(day, dtype=np.float64) - 2))  # library size falls with the day
    library = base_library * day_factor * np.exp(rng.normal(0, 0.35, n))
    adt_depth = day_factor * np.exp(0.6 * np.log(library / base_library) + rng.normal(0, 0.25, n))
    atac_depth = 0.45 * day_factor * np.exp(rng.normal(0, 0.3, n))
    committed = sigmoid((t - COMMIT_TIME) / COMMIT_WIDTH) > 0.5
    cell_type = np.where(committed, np.asarray(LINEAGES, dtype=object)[lineage], "HSC")
    return pd.DataFrame(
        {
            "lineage": lineage,
            "t": t,
            "cycling": rng.normal(0, 1, n) * (1 - t),
            "library": library,
            "adt_depth": adt_depth,
            "atac_depth": atac_depth,
            "cell_type": cell_type,
        }
    )


def programs(states: pd.DataFrame) -> np.ndarray:
    """Program activities of the given states.

    Stemness decays with pseudotime; each lineage has a commitment and a
    maturation program that switch on along its own branch; a cycling program
    and pseudotime itself complete the set.

    Parameters
    ----------
    states : pandas.DataFrame
        As :func:`sample_states` draws them.

    Returns
    -------
    numpy.ndarray
        Cells x ``N_PROGRAMS``, float64.
    """
    t = states["t"].to_numpy()
    lineage = states["lineage"].to_numpy()
    onehot = np.eye(len(LINEAGES))[lineage]
    commit = onehot * sigmoid((t - COMMIT_TIME) / COMMIT_WIDTH)[:, None]
    mature = onehot * sigmoid((t - MATURE_TIME) / MATURE_WIDTH)[:, None]
    stem = np.exp(-4.0 * t)
    return np.column_stack([stem, states["cycling"].to_numpy(), t, commit, mature]).astype(np.float64)


def sigmoid(x):
    """The logistic function.

    Parameters
    ----------
    x : array_like
        Logits.

    Returns
    -------
    numpy.ndarray
        Values in (0, 1), with the shape and float type of ``x``.
    """
    return 1.0 / (1.0 + np.exp(-x))


def allocate(total: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` cells over groups in proportion to ``weights``.

    Parameters
    ----------
    total : int
        Cells to split.
    weights : numpy.ndarray
        One non-negative weight per group.
    rng : numpy.random.Generator
        Breaks ties between equal remainders.

    Returns
    -------
    numpy.ndarray
        int64 counts that sum to ``total`` exactly.
    """
    weights = np.asarray(weights, dtype=np.float64)
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    remainder = total - counts.sum()
    if remainder:
        order = np.argsort(-(raw - counts) + 1e-9 * rng.random(len(raw)))
        counts[order[:remainder]] += 1
    return counts
