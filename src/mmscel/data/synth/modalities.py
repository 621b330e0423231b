"""How RNA and surface proteins depend on the cell state (the chromatin lives in :mod:`.chromatin`).

Each model holds its sampled parameters and offers the expected counts of a
chunk of cells; :mod:`mmscel.data.synth.noise` draws counts around them and
computes exact expectations of the transformed targets (the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmscel.data import layout
from mmscel.data.synth.biology import N_PROGRAMS

RNA_SCALE = 1e4  # library-size normalisation to 10,000 counts, then log1p
ADT_DEPTH = 20.0
ADT_THETA = 6.0
ADT_SCALE = 0.5
N_HIDDEN = 16
W2_SCALE = 0.9
PROTEIN_BASE_SD = 0.5
MULTI_BASE_SD = 1.2
MULTI_LOADING_SCALE = 1.9


def _loadings(rng, n_features, density=0.18, scale=1.1):
    mask = rng.random((N_PROGRAMS, n_features)) < density
    return np.where(mask, rng.normal(0, scale, (N_PROGRAMS, n_features)), 0.0)


@dataclass
class GeneModel:
    """Log-linear gene expression: base + programs + donor offsets (+ cis peaks).

    Attributes
    ----------
    base : numpy.ndarray
        Log expression of each gene.
    loadings : numpy.ndarray
        Programs x genes.
    donor_offset : numpy.ndarray
        Donors x genes.
    theta : numpy.ndarray
        Negative binomial inverse dispersion of each gene.
    on_chr_y : numpy.ndarray
        Whether each gene lies on chrY (never expressed by the female donor).
    normaliser : float
        Sum of ``exp(base)``, which scales expression to the library size.
    """

    base: np.ndarray  # genes
    loadings: np.ndarray  # programs x genes
    donor_offset: np.ndarray  # donors x genes
    theta: np.ndarray  # genes (NB inverse dispersion)
    on_chr_y: np.ndarray  # genes (bool)
    normaliser: float

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        n_genes: int,
        base_sd: float = 1.7,
        loading_scale: float = 1.1,
        chr_y_fraction: float = 0.003,
    ) -> GeneModel:
        """Sample base expression, program loadings, donor offsets and dispersions.

        Parameters
        ----------
        rng : numpy.random.Generator
            The model's random stream.
        n_genes : int
            Number of genes.
        base_sd : float
            Spread of the base log expression.
        loading_scale : float
            Spread of the non-zero program loadings.
        chr_y_fraction : float
            Share of genes on chrY (never the first two).

        Returns
        -------
        GeneModel
            The sampled model.
        """
        base = rng.normal(-1.2, base_sd, n_genes)
        on_chr_y = rng.random(n_genes) < chr_y_fraction
        on_chr_y[: min(2, n_genes)] = False
        return cls(
            base=base,
            loadings=_loadings(rng, n_genes, scale=loading_scale),
            donor_offset=rng.normal(0, 0.25, (len(layout.DONORS), n_genes)),
            theta=rng.uniform(4.0, 12.0, n_genes),
            on_chr_y=on_chr_y,
            normaliser=float(np.exp(base).sum()),
        )

    def mean_counts(self, program: np.ndarray, donor_row: np.ndarray, library: np.ndarray, extra=None) -> np.ndarray:
        """Expected counts for cells with these programs, donors and libraries.

        Parameters
        ----------
        program : numpy.ndarray
            Cells x programs, as :func:`~mmscel.data.synth.biology.programs` computes them.
        donor_row : numpy.ndarray
            Each cell's row in ``donor_offset``.
        library : numpy.ndarray
            Expected RNA counts of each cell.
        extra : numpy.ndarray, optional
            Cells x genes added to the log expression (the cis peaks).

        Returns
        -------
        numpy.ndarray
            Cells x genes.
        """
        eta = self.base + program @ self.loadings + self.donor_offset[donor_row]
        if extra is not None:
            eta += extra
        mu = np.exp(eta) * (library / self.normaliser)[:, None]
        female = donor_row == layout.DONORS.index(layout.FEMALE_DONOR)
        mu[np.ix_(female, self.on_chr_y)] = 0.0
        return mu


@dataclass
class ProteinModel:
    """Surface proteins as a small random network of the programs, read out through ADT counts.

    Attributes
    ----------
    w1, b1 : numpy.ndarray
        Programs x hidden weights and hidden biases.
    w2 : numpy.ndarray
        Hidden x proteins weights (half of them zero).
    base : numpy.ndarray
        Log abundance of each protein.
    donor_offset : numpy.ndarray
        Donors x proteins.
    ambient : numpy.ndarray
        Background counts of each protein at unit depth.
    is_isotype : numpy.ndarray
        Whether each protein is an isotype control (background only).
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    base: np.ndarray
    donor_offset: np.ndarray
    ambient: np.ndarray
    is_isotype: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ProteinModel:
        """Sample the protein network, donor offsets and ambient background.

        Parameters
        ----------
        rng : numpy.random.Generator
            The model's random stream.

        Returns
        -------
        ProteinModel
            A model of the 140 competition proteins.
        """
        n = len(layout.CITE_PROTEINS)
        return cls(
            w1=rng.normal(0, 1.6, (N_PROGRAMS, N_HIDDEN)),
            b1=rng.normal(0, 0.6, N_HIDDEN),
            w2=rng.normal(0, W2_SCALE, (N_HIDDEN, n)) * (rng.random((N_HIDDEN, n)) < 0.5),
            base=rng.normal(0.8, PROTEIN_BASE_SD, n),
            donor_offset=rng.normal(0, 0.12, (len(layout.DONORS), n)),
            ambient=np.exp(rng.normal(0.3, 0.5, n)),
            is_isotype=np.isin(np.asarray(layout.CITE_PROTEINS), layout.ISOTYPE_CONTROLS),
        )

    def linear_profile(self) -> np.ndarray:
        """Approximate per-program effect on each protein.

        Returns
        -------
        numpy.ndarray
            Programs x proteins.
        """
        return self.w1 @ self.w2

    def mean_counts(self, program: np.ndarray, donor_row: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Expected ADT counts: specific binding plus ambient background.

        Parameters
        ----------
        program : numpy.ndarray
            Program activities, cells x programs.
        donor_row : numpy.ndarray
            The cells' donors, as rows of ``donor_offset``.
        depth : numpy.ndarray
            ADT depth of each cell.

        Returns
        -------
        numpy.ndarray
            Cells x 140.
        """
        hidden = np.tanh(program @ self.w1 + self.b1)
        specific = np.exp(self.base + hidden @ self.w2 + self.donor_offset[donor_row])
        specific[:, self.is_isotype] = 0.0
        return ADT_DEPTH * depth[:, None] * (specific + self.ambient)

    def centre(self) -> np.ndarray:
        """dsb-like centring: log1p of the background count at unit depth.

        Returns
        -------
        numpy.ndarray
            One value per protein.
        """
        return np.log1p(ADT_DEPTH * self.ambient)

    def to_target(self, log1p_counts: np.ndarray) -> np.ndarray:
        """dsb-like values from log1p counts (background-centred, scaled; may be negative).

        Parameters
        ----------
        log1p_counts : numpy.ndarray
            Cells x proteins.

        Returns
        -------
        numpy.ndarray
            Cells x proteins.
        """
        return (log1p_counts - self.centre()) / ADT_SCALE
