"""How chromatin accessibility depends on the cell state, and the ATAC counts and TF-IDF drawn from it.

Peaks open with the programs; genes are linked in cis to nearby peaks, whose
open state adds to their expression (see :mod:`.multi`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.synth.biology import N_PROGRAMS, sigmoid


@dataclass
class PeakModel:
    """Chromatin accessibility: each peak opens with one program, or constitutively.

    Attributes
    ----------
    base : numpy.ndarray
        Logit of each peak being open.
    program : numpy.ndarray
        The program that opens each peak.
    weight : numpy.ndarray
        How strongly it does (0 for constitutive peaks).
    donor_offset : numpy.ndarray
        Donors x peaks, float32.
    on_chr_y : numpy.ndarray
        Whether each peak lies on chrY (never open in the female donor).
    """

    base: np.ndarray
    program: np.ndarray
    weight: np.ndarray
    donor_offset: np.ndarray
    on_chr_y: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, chromosome: np.ndarray) -> PeakModel:
        """Sample which program opens each peak, and how strongly.

        Parameters
        ----------
        rng : numpy.random.Generator
            The model's random stream.
        chromosome : numpy.ndarray
            Chromosome of each peak.

        Returns
        -------
        PeakModel
            The sampled model.
        """
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
        """Probability that each peak is open in each cell.

        Parameters
        ----------
        program, donor_row : numpy.ndarray
            Program activities (cells x programs) and each cell's row in ``donor_offset``.

        Returns
        -------
        numpy.ndarray
            Cells x peaks, float32.
        """
        activity = program.astype(np.float32)[:, self.program]
        logit = self.base.astype(np.float32) + self.weight.astype(np.float32) * activity + self.donor_offset[donor_row]
        prob = sigmoid(logit)
        female = donor_row == layout.DONORS.index(layout.FEMALE_DONOR)
        prob[np.ix_(female, self.on_chr_y)] = 0.0
        return prob


def sample_atac(
    rng: np.random.Generator, open_state: sp.csr_matrix, depth: np.ndarray, background: float = 0.0015
) -> sp.csr_matrix:
    """ATAC counts: open peaks yield Poisson(depth) fragments, closed peaks rare background.

    Parameters
    ----------
    rng : numpy.random.Generator
        The chunk's random stream.
    open_state : scipy.sparse.csr_matrix
        Cells x peaks, true where a peak is open.
    depth : numpy.ndarray
        ATAC depth of each cell.
    background : float
        Chance of a background fragment in any peak.

    Returns
    -------
    scipy.sparse.csr_matrix
        Cells x peaks float32 counts, without stored zeros.
    """
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
    """Link each gene to up to ``per_gene`` nearest peaks on its chromosome.

    The window scales with peak density, so every scale links genes to a few peaks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the link weights.
    gene_chrom, gene_pos : numpy.ndarray
        Chromosome and position of each gene.
    peak_chrom, peak_centre : numpy.ndarray
        Chromosome and centre of each peak.
    per_gene : int
        Most links per gene.

    Returns
    -------
    scipy.sparse.csr_matrix
        Genes x peaks link weights.
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
    """Signac-style TF-IDF: log1p(count / cell total * idf * 1e4).

    Parameters
    ----------
    counts : scipy.sparse.csr_matrix
        Cells x peaks ATAC counts.
    idf : numpy.ndarray
        Inverse document frequency of each peak.

    Returns
    -------
    scipy.sparse.csr_matrix
        Cells x peaks, float32.
    """
    totals = np.asarray(counts.sum(axis=1)).ravel()
    out = counts.astype(np.float32).tocsr(copy=True)
    per_row = np.repeat(np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0), np.diff(out.indptr))
    out.data = np.log1p(out.data * per_row * idf[out.indices] * 1e4).astype(np.float32)
    return out
