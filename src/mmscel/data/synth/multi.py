"""Simulate the Multiome task: ATAC of ~228,942 peaks in, RNA of 23,418 genes out.

Two passes over the cells. The first draws each chunk's open chromatin, its
ATAC counts (kept sparse in a scratch folder) and its RNA, which depends on
the programs and on the open state of peaks linked in cis to each gene. The
second turns the counts into TF-IDF, whose inverse document frequency needs
the column sums over all cells, and writes the dense input files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmscel.data import layout
from mmscel.data.synth import modalities, names
from mmscel.data.synth.biology import Donors, programs, sample_states
from mmscel.data.synth.chromatin import PeakModel, cis_links, sample_atac, tf_idf
from mmscel.data.synth.frames import all_or_nothing, frame_writer, raw_writer
from mmscel.data.synth.modalities import RNA_SCALE, GeneModel
from mmscel.data.synth.noise import expected_log1p_nb, sample_nb
from mmscel.metrics import pearson_per_row
from mmscel.progress import track

CHUNK_CELLS = 256
LIBRARY_PER_GENE = 0.5
ORACLE_TRAIN_CELLS = 2_000


@dataclass
class MultiWorld:
    """Everything sampled once for the Multiome task.

    Attributes
    ----------
    peaks : numpy.ndarray
        Input column names ``chr1:start-end``, in genome order.
    genes : numpy.ndarray
        Target column names (Ensembl ids).
    peak_model : PeakModel
        Chromatin accessibility.
    gene_model : GeneModel
        RNA expression.
    links : scipy.sparse.csr_matrix
        Genes x peaks cis weights.
    donors : Donors
        Lineage mix of each donor.
    """

    peaks: np.ndarray
    genes: np.ndarray
    peak_model: PeakModel
    gene_model: GeneModel
    links: sp.csr_matrix
    donors: Donors

    @classmethod
    def sample(cls, rng: np.random.Generator, n_peaks: int, n_genes: int, donors: Donors) -> MultiWorld:
        """Sample peaks, genes on the genome, their models and the cis links.

        Parameters
        ----------
        rng : numpy.random.Generator
            The task's random stream.
        n_peaks, n_genes : int
            Number of input peaks and of target genes.
        donors : Donors
            Lineage mix of each donor.

        Returns
        -------
        MultiWorld
            The sampled task.
        """
        peaks, peak_chrom, peak_centre = names.peak_layout(rng, n_peaks)
        chromosomes = list(names.CHROMOSOME_LENGTHS)
        lengths = np.asarray(list(names.CHROMOSOME_LENGTHS.values()), dtype=np.float64)
        gene_chrom = np.asarray(chromosomes, dtype=object)[
            rng.choice(len(chromosomes), size=n_genes, p=lengths / lengths.sum())
        ]
        gene_pos = (rng.random(n_genes) * np.asarray([names.CHROMOSOME_LENGTHS[c] for c in gene_chrom])).astype(
            np.int64
        )
        gene_model = GeneModel.sample(
            rng, n_genes, base_sd=modalities.MULTI_BASE_SD, loading_scale=modalities.MULTI_LOADING_SCALE
        )
        gene_model.on_chr_y = gene_chrom == "chrY"
        links = cis_links(rng, gene_chrom, gene_pos, peak_chrom, peak_centre)
        return cls(peaks, names.ensembl_ids(rng, n_genes), PeakModel.sample(rng, peak_chrom), gene_model, links, donors)


@dataclass
class MultiResult:
    """What the leaderboard and truth.json need from the Multiome simulation.

    Attributes
    ----------
    scored_truth : numpy.ndarray
        Scored test cells x scored genes per cell, the hidden truth.
    scored_mean_profile : numpy.ndarray
        The mean training profile on the same entries (the mean-profile floor).
    oracle, reachable : dict of str to numpy.ndarray
        Per-cell scores of 'train', 'public' and 'private' of the oracle and of
        the chromatin-averaged reference.
    train_reference_cells : numpy.ndarray or None
        Cell ids of the train cells those scores were taken on.
    cell_type : numpy.ndarray or None
        Cell type of every planned cell.
    """

    scored_truth: np.ndarray
    scored_mean_profile: np.ndarray
    oracle: dict[str, np.ndarray] = field(default_factory=dict)
    reachable: dict[str, np.ndarray] = field(default_factory=dict)
    train_reference_cells: np.ndarray | None = None
    cell_type: np.ndarray | None = None


@dataclass
class _Simulation:
    """What both passes over the cells share."""

    out: Path
    scratch: Path
    world: MultiWorld
    states: pd.DataFrame
    donor: np.ndarray  # per plan row
    cell_ids: np.ndarray  # per plan row
    seed: int
    raw: bool


def simulate_multi(
    out: Path, scratch: Path, scale, plan, cell_ids, seed: int, raw: bool, scored_rows, scored_genes
) -> MultiResult:
    """Write the Multiome files of a synthetic competition.

    Parameters
    ----------
    out : pathlib.Path
        The competition folder being built; the test targets go to its ``truth/``.
    scratch : pathlib.Path
        A folder for the sparse ATAC counts between the two passes; removed at the end.
    scale : Scale
        Multiome cell, peak and gene counts.
    plan : pandas.DataFrame
        The Multiome cells in file order, as :func:`~mmscel.data.synth.plan.plan_task` plans them.
    cell_ids : numpy.ndarray
        Id of each planned Multiome cell.
    seed : int
        The competition's seed, from which every random stream of the task derives.
    raw : bool
        Also write the ATAC counts and the training RNA counts as ``*_raw.h5``.
    scored_rows : numpy.ndarray
        The test rows the leaderboard scores.
    scored_genes : numpy.ndarray
        Per scored row, its scored gene columns.

    Returns
    -------
    MultiResult
        The hidden truth.
    """
    donors = Donors.sample(np.random.default_rng([seed, 0]))
    world = MultiWorld.sample(np.random.default_rng([seed, 21]), scale.multi_peaks, scale.multi_genes, donors)
    states = sample_states(
        np.random.default_rng([seed, 22]),
        donors,
        plan["donor"].to_numpy(),
        plan["day"].to_numpy(),
        LIBRARY_PER_GENE * scale.multi_genes,
    )
    is_train = (plan["split"] == "train").to_numpy()
    train_idx, test_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    oracle_rows = np.sort(
        np.random.default_rng([seed, 23]).choice(len(train_idx), min(ORACLE_TRAIN_CELLS, len(train_idx)), replace=False)
    )
    scratch.mkdir(parents=True, exist_ok=True)
    sim = _Simulation(out, scratch, world, states, plan["donor"].to_numpy(), cell_ids, seed, raw)
    column_counts = np.zeros(len(world.peaks))
    train = _first_pass(sim, "train", train_idx, oracle_rows, None, column_counts)
    test = _first_pass(sim, "test", test_idx, scored_rows, scored_genes, column_counts)
    idf = len(plan) / np.where(column_counts > 0, column_counts, 1.0)
    for split, idx in (("train", train_idx), ("test", test_idx)):
        _second_pass(sim, split, idx, idf)
    shutil.rmtree(scratch, ignore_errors=True)
    test_split = plan["split"].to_numpy()[test_idx][scored_rows]
    mean_profile = train["target_sum"] / max(1, len(train_idx))
    result = MultiResult(scored_truth=test["scored"], scored_mean_profile=mean_profile[scored_genes])
    for name in ("oracle", "reachable"):
        getattr(result, name).update(
            train=train[name], public=test[name][test_split == "public"], private=test[name][test_split == "private"]
        )
    result.train_reference_cells = cell_ids[train_idx[oracle_rows]]
    result.cell_type = states["cell_type"].to_numpy()
    return result


def _first_pass(sim: _Simulation, split: str, idx, oracle_rows, oracle_genes, column_counts) -> dict:
    """Draw ATAC counts (to scratch) and RNA targets of one split; score the oracle and the
    chromatin-averaged reference on ``oracle_rows``."""
    stem = layout.MULTI.train_targets if split == "train" else "test_multi_targets"
    folder = sim.out if split == "train" else sim.out / layout.TRUTH_DIR
    world = sim.world
    writers = {"y": frame_writer(folder, stem, sim.cell_ids[idx], world.genes)}
    if sim.raw and split == "train":
        writers["raw"] = raw_writer(sim.out, stem, sim.cell_ids[idx], world.genes)
    oracle, reachable, scored, target_sum = [], [], [], np.zeros(len(world.genes))
    with all_or_nothing(writers.values()):
        starts = range(0, len(idx), CHUNK_CELLS)
        for number, start in enumerate(track(starts, f"Multiome {split} (ATAC, RNA)", total=len(starts))):
            rows = idx[start : start + CHUNK_CELLS]
            rng = np.random.default_rng([sim.seed, 30 if split == "train" else 31, number])
            local = np.flatnonzero((oracle_rows >= start) & (oracle_rows < start + len(rows)))
            in_chunk = oracle_rows[local] - start
            counts, rna, mu, scale, mu_averaged = _simulate_chunk(
                world, sim.states.iloc[rows], sim.donor[rows], rng, in_chunk
            )
            sp.save_npz(sim.scratch / f"{split}_{number:06d}.npz", counts, compressed=False)
            column_counts += np.asarray(counts.sum(axis=0)).ravel()
            writers["y"].write(rna)
            if "raw" in writers:
                writers["raw"].write(np.rint(np.expm1(rna) / scale[:, None]))
            target_sum += rna.sum(axis=0, dtype=np.float64)
            cols = None if oracle_genes is None else oracle_genes[local]
            scores, values = _oracle(world, mu[in_chunk], scale[in_chunk], rna[in_chunk], cols)
            oracle.append(scores)
            reachable.append(_oracle(world, mu_averaged, scale[in_chunk], rna[in_chunk], cols)[0])
            scored.append(values)
    return {
        "oracle": np.concatenate(oracle),
        "reachable": np.concatenate(reachable),
        "scored": np.concatenate(scored),
        "target_sum": target_sum,
    }


def _simulate_chunk(
    world: MultiWorld, states: pd.DataFrame, donor: np.ndarray, rng: np.random.Generator, reference_rows=()
):
    """ATAC counts, RNA targets, their expected counts and scale of one chunk of cells; and the
    chromatin-averaged expected counts of ``reference_rows`` (no random draws: the chunk's stream is unchanged)."""
    program = programs(states)
    donor_row = world.donors.index(donor)
    probability = world.peak_model.open_probability(program, donor_row)
    library = states["library"].to_numpy()
    rows = np.asarray(reference_rows, dtype=np.int64)
    mu_averaged = chromatin_averaged_mean(world, program[rows], donor_row[rows], library[rows], probability[rows])
    open_state = sp.csr_matrix(rng.random(probability.shape, dtype=np.float32) < probability)
    del probability
    counts = _drop_female_chr_y(sample_atac(rng, open_state, states["atac_depth"].to_numpy()), world, donor_row)
    cis = np.asarray((open_state.astype(np.float64) @ world.links.T).todense())
    mu = world.gene_model.mean_counts(program, donor_row, library, extra=cis)
    scale = RNA_SCALE / library
    rna = np.log1p(sample_nb(rng, mu, world.gene_model.theta) * scale[:, None]).astype(np.float32)
    return counts, rna, mu, scale, mu_averaged


def chromatin_averaged_mean(world: MultiWorld, program, donor_row, library, probability) -> np.ndarray:
    """Expected RNA counts given the programs, donor and library, the open state of the linked peaks averaged out.

    Each gene's cis term is a sum over its linked peaks of ``w`` times an
    independent open/closed coin flip with the peak's probability ``p``, so
    E[exp(cis)] = prod(1 + p (e^w - 1)). This is what a model that knew each
    cell's state perfectly, but not which of its peaks happen to be open, could
    predict: the ATAC counts show an open peak only when a fragment is captured.

    Parameters
    ----------
    world : MultiWorld
        The task.
    program, donor_row, library : numpy.ndarray
        The cells' programs, donor rows and expected RNA counts, as for :meth:`GeneModel.mean_counts`.
    probability : numpy.ndarray
        Cells x peaks: the chance that each peak is open.

    Returns
    -------
    numpy.ndarray
        Cells x genes.
    """
    links = world.links.tocoo()
    terms = np.log1p(probability[:, links.col].astype(np.float64) * np.expm1(links.data)[None, :])
    per_gene = sp.csr_matrix((np.ones(links.nnz), (np.arange(links.nnz), links.row)), shape=(links.nnz, links.shape[0]))
    return world.gene_model.mean_counts(program, donor_row, library, extra=np.asarray(terms @ per_gene))


def _drop_female_chr_y(counts: sp.csr_matrix, world: MultiWorld, donor_row: np.ndarray) -> sp.csr_matrix:
    """Background fragments must not land on chrY in the female donor either."""
    female = donor_row == layout.DONORS.index(layout.FEMALE_DONOR)
    if not female.any():
        return counts
    coo = counts.tocoo()
    keep = ~(female[coo.row] & world.peak_model.on_chr_y[coo.col])
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def _oracle(world, mu_rows, scale_rows, y_rows, cols):
    """Per-cell Pearson of E[y] under the expected counts ``mu_rows`` with y (all genes or each row's scored genes)."""
    if cols is None:
        theta = world.gene_model.theta[None, :]
    else:
        mu_rows, y_rows, theta = (
            np.take_along_axis(mu_rows, cols, 1),
            np.take_along_axis(y_rows, cols, 1),
            world.gene_model.theta[cols],
        )
    expected = expected_log1p_nb(mu_rows, theta, scale_rows[:, None])
    return pearson_per_row(y_rows, expected), y_rows.astype(np.float32)


def _second_pass(sim: _Simulation, split: str, idx: np.ndarray, idf: np.ndarray) -> None:
    """TF-IDF of the scratch counts, written as the dense input file of one split (and the counts with ``raw``)."""
    stem = layout.MULTI.train_inputs if split == "train" else layout.MULTI.test_inputs
    ids, peaks = sim.cell_ids[idx], sim.world.peaks
    writers = [frame_writer(sim.out, stem, ids, peaks)] + ([raw_writer(sim.out, stem, ids, peaks)] if sim.raw else [])
    with all_or_nothing(writers):
        files = sorted(sim.scratch.glob(f"{split}_*.npz"))
        for path in track(files, f"Multiome {split} (TF-IDF inputs)", total=len(files)):
            counts = sp.load_npz(path).tocsr()
            for writer, values in zip(writers, (tf_idf(counts, idf), counts)):
                writer.write(values.toarray())
