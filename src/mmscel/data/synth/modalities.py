"""How each modality depends on the cell state: CITEseq (RNA, ADT) and Multiome (ATAC, RNA).

Each model holds its sampled parameters and offers the expected counts of a
chunk of cells; :mod:`mmscel.data.synth.noise` draws counts around them and
computes exact expectations of the transformed targets (the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.synth.biology import N_PROGRAMS, _sigmoid

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
    """Log-linear gene expression: base + programs + donor offsets (+ cis peaks)."""

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
        """Sample base expression, program loadings, donor offsets and dispersions."""
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
        """Expected counts (cells x genes) for cells with these programs, donors and libraries."""
        eta = self.base + program @ self.loadings + self.donor_offset[donor_row]
        if extra is not None:
            eta += extra
        mu = np.exp(eta) * (library / self.normaliser)[:, None]
        female = donor_row == layout.DONORS.index(layout.FEMALE_DONOR)
        mu[np.ix_(female, self.on_chr_y)] = 0.0
        return mu


@dataclass
class ProteinModel:
    """Surface proteins as a small random network of the programs, read out through ADT counts."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    base: np.ndarray
    donor_offset: np.ndarray
    ambient: np.ndarray
    is_isotype: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ProteinModel:
        """Sample the protein network, donor offsets and ambient background."""
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
        """Approximate per-program effect on each protein (programs x proteins)."""
        return self.w1 @ self.w2

    def mean_counts(self, program: np.ndarray, donor_row: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Expected ADT counts (cells x 140): specific binding plus ambient background."""
        hidden = np.tanh(program @ self.w1 + self.b1)
        specific = np.exp(self.base + hidden @ self.w2 + self.donor_offset[donor_row])
        specific[:, self.is_isotype] = 0.0
        return ADT_DEPTH * depth[:, None] * (specific + self.ambient)

    def centre(self) -> np.ndarray:
        """dsb-like centring: log1p of the background count at unit depth."""
        return np.log1p(ADT_DEPTH * self.ambient)

    def to_target(self, log1p_counts: np.ndarray) -> np.ndarray:
        """dsb-like values from log1p counts (background-centred, scaled; may be negative)."""
        return (log1p_counts - self.centre()) / ADT_SCALE


@dataclass
class PeakModel:
    """Chromatin accessibility: each peak opens with one program, or constitutively."""

    base: np.ndarray
    program: np.ndarray
    weight: np.ndarray
    donor_offset: np.ndarray
    on_chr_y: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, chromosome: np.ndarray) -> PeakModel:
        """Sample which program opens each peak, and how strongly."""
        n = len(chromosome)
        regulated = rng.random(n) < 0.7
        return cls(
            base=np.where(regulated, rng.normal(-4.2, 0.8, n), rng.normal(-2.4, 0.9, n)),
            program=np.where(regulated, rng.integers(0, N_PROGRAMS, n), 0),
            weight=np.where(regulated, rng.normal(4.0, 1.0, n), 0.0),
            donor_offset=rng.normal(0, 0.2, (len(layout.DONORS), n)).astype(np.float32),
            on_chr_y=np.asarray(chromosome) == "chrY",
        )

    def open_probability(self, program: np.ndarray, donor_row: np.ndarray) -> np.ndarray:
        """Probability that each peak is open in each cell (cells x peaks, float32)."""
        activity = program.astype(np.float32)[:, self.program]
        logit = self.base.astype(np.float32) + self.weight.astype(np.float32) * activity + self.donor_offset[donor_row]
        prob = _sigmoid(logit)
        female = donor_row == layout.DONORS.index(layout.FEMALE_DONOR)
        prob[np.ix_(female, self.on_chr_y)] = 0.0
        return prob


def sample_atac(
    rng: np.random.Generator, open_state: sp.csr_matrix, depth: np.ndarray, background: float = 0.0015
) -> sp.csr_matrix:
    """ATAC counts: open peaks yield Poisson(depth) fragments, closed peaks rare background."""
    counts = open_state.astype(np.float32).tocsr()
    counts.data = rng.poisson(np.repeat(depth, np.diff(counts.indptr))).astype(np.float32)
    n_cells, n_peaks = open_state.shape
    n_bg = rng.binomial(n_peaks, background, n_cells)
    rows = np.repeat(np.arange(n_cells), n_bg)
    cols = rng.integers(0, n_peaks, n_bg.sum())
    bg = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=open_state.shape)
    counts = (counts + bg).tocsr()
    counts.eliminate_zeros()
    counts.sum_duplicates()
    return counts


def cis_links(
    rng: np.random.Generator, gene_chrom, gene_pos, peak_chrom, peak_centre, per_gene: int = 4
) -> sp.csr_matrix:
    """Link each gene to up to ``per_gene`` nearest peaks on its chromosome (genes x peaks weights).

    The window scales with peak density, so every scale links genes to a few peaks.
    """
    n_genes, n_peaks = len(gene_chrom), len(peak_chrom)
    peak_chrom = np.asarray(peak_chrom)
    rows, cols = [], []
    for chrom in np.unique(gene_chrom):
        genes = np.flatnonzero(gene_chrom == chrom)
        peaks = np.flatnonzero(peak_chrom == chrom)
        if len(peaks) == 0:
            continue
        order = np.argsort(peak_centre[peaks], kind="stable")
        centres = peak_centre[peaks][order]
        where = np.searchsorted(centres, gene_pos[genes])
        candidates = where[:, None] + np.arange(-per_gene, per_gene)[None, :]
        valid = (candidates >= 0) & (candidates < len(centres))
        clipped = np.clip(candidates, 0, len(centres) - 1)
        distance = np.where(valid, np.abs(centres[clipped] - gene_pos[genes][:, None]), np.inf)
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :per_gene]
        chosen = np.take_along_axis(clipped, nearest, axis=1)
        ok = np.isfinite(np.take_along_axis(distance, nearest, axis=1))
        rows.append(np.repeat(genes, per_gene)[ok.ravel()])
        cols.append(peaks[order[chosen.ravel()[ok.ravel()]]])
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    weights = rng.normal(0.7, 0.35, len(rows))
    return sp.csr_matrix((weights, (rows, cols)), shape=(n_genes, n_peaks))


def tf_idf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Signac-style TF-IDF: log1p(count / cell total * idf * 1e4)."""
    totals = np.asarray(counts.sum(axis=1)).ravel()
    out = counts.astype(np.float32).tocsr(copy=True)
    per_row = np.repeat(np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0), np.diff(out.indptr))
    out.data = np.log1p(out.data * per_row * idf[out.indices] * 1e4).astype(np.float32)
    return out
