"""Simulate the CITEseq task: RNA of ~22,050 genes in, 140 surface proteins out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmscel.data import layout
from mmscel.data.competition import write_metadata
from mmscel.data.synth import names
from mmscel.data.synth.biology import Donors, programs, sample_states
from mmscel.data.synth.frames import all_or_nothing, frame_writer, raw_writer
from mmscel.data.synth.modalities import ADT_THETA, RNA_SCALE, GeneModel, ProteinModel
from mmscel.data.synth.noise import expected_log1p_nb, sample_nb
from mmscel.metrics import pearson_per_row
from mmscel.progress import track

CHUNK_CELLS = 512
LIBRARY_PER_GENE = 0.42  # expected RNA counts per gene and cell: ~78% zeros
PROTEINS = np.asarray(layout.CITE_PROTEINS, dtype=object)
TEST_TARGETS = "test_cite_targets"
# Random streams of the chunks: seed, stream, chunk number.
TRAIN_STREAM, TEST_STREAM, DAY2_EXTRA_STREAM = 10, 11, 12
_STASHED = ("inputs", "targets", "input_counts", "target_counts", "oracle")


@dataclass
class CiteWorld:
    """Everything sampled once for the CITEseq task.

    Attributes
    ----------
    genes : numpy.ndarray
        Input column names ``ENSG..._SYMBOL``.
    gene_model : GeneModel
        RNA expression.
    protein_model : ProteinModel
        Surface proteins.
    donors : Donors
        Lineage mix of each donor.
    """

    genes: np.ndarray
    gene_model: GeneModel
    protein_model: ProteinModel
    donors: Donors

    @classmethod
    def sample(cls, rng: np.random.Generator, n_genes: int, donors: Donors) -> CiteWorld:
        """Sample names, gene and protein models; genes named after a protein follow it loosely.

        Parameters
        ----------
        rng : numpy.random.Generator
            The task's random stream.
        n_genes : int
            Number of input genes.
        donors : Donors
            Lineage mix of each donor.

        Returns
        -------
        CiteWorld
            The sampled task.
        """
        genes, gene_of_protein = names.cite_gene_names(rng, n_genes)
        gene_model = GeneModel.sample(rng, n_genes)
        protein_model = ProteinModel.sample(rng)
        profile = protein_model.linear_profile()
        # Genes named after a protein follow it loosely: related, never a copy.
        for protein, gene in enumerate(gene_of_protein):
            if gene >= 0:
                gene_model.loadings[:, gene] = 0.5 * profile[:, protein] + rng.normal(0, 0.3, profile.shape[0])
        return cls(genes, gene_model, protein_model, donors)


@dataclass
class CiteChunk:
    """One chunk of simulated cells.

    Attributes
    ----------
    inputs : numpy.ndarray
        Cells x genes, normalised log1p RNA (float32).
    targets : numpy.ndarray
        Cells x proteins, dsb-like values (float32).
    input_counts, target_counts : numpy.ndarray
        The RNA and ADT counts they come from.
    oracle : numpy.ndarray
        Per-cell Pearson of E[y | state] with y.
    """

    inputs: np.ndarray
    targets: np.ndarray
    input_counts: np.ndarray
    target_counts: np.ndarray
    oracle: np.ndarray  # per-cell Pearson of E[y | state] with y


def simulate_chunk(world: CiteWorld, states: pd.DataFrame, donor: np.ndarray, rng: np.random.Generator) -> CiteChunk:
    """Draw RNA inputs and protein targets of the given cells, and score the oracle on them.

    Parameters
    ----------
    world : CiteWorld
        The task.
    states : pandas.DataFrame
        The cells' latent states.
    donor : numpy.ndarray
        Donor id of each cell.
    rng : numpy.random.Generator
        The chunk's random stream.

    Returns
    -------
    CiteChunk
        The cells' values.
    """
    program = programs(states)
    donor_row = world.donors.index(donor)
    library = states["library"].to_numpy()
    gene_mu = world.gene_model.mean_counts(program, donor_row, library)
    counts = sample_nb(rng, gene_mu, world.gene_model.theta)
    inputs = normalise_log1p(counts)
    adt_mu = world.protein_model.mean_counts(program, donor_row, states["adt_depth"].to_numpy())
    adt = sample_nb(rng, adt_mu, ADT_THETA)
    targets = world.protein_model.to_target(np.log1p(adt)).astype(np.float32)
    expected = world.protein_model.to_target(expected_log1p_nb(adt_mu, ADT_THETA, 1.0))
    return CiteChunk(inputs, targets, counts, adt, pearson_per_row(targets, expected))


def normalise_log1p(counts: np.ndarray) -> np.ndarray:
    """log1p of counts scaled to 10,000 per cell (zeros stay zeros).

    Parameters
    ----------
    counts : numpy.ndarray
        Cells x genes.

    Returns
    -------
    numpy.ndarray
        Cells x genes, float32.
    """
    totals = counts.sum(axis=1, keepdims=True)
    return np.log1p(counts * (RNA_SCALE / np.maximum(totals, 1.0))).astype(np.float32)


@dataclass
class CiteResult:
    """What the leaderboard and truth.json need from the CITEseq simulation.

    Attributes
    ----------
    test_targets : numpy.ndarray
        Test cells x proteins, the hidden truth.
    train_target_mean : numpy.ndarray
        Mean training profile (the mean-profile floor).
    oracle : dict of str to numpy.ndarray
        Per-cell oracle scores of 'train', 'test', 'public' and 'private'.
    cell_type : numpy.ndarray or None
        Cell type of every planned cell.
    """

    test_targets: np.ndarray
    train_target_mean: np.ndarray
    oracle: dict[str, np.ndarray] = field(default_factory=dict)
    cell_type: np.ndarray | None = None


def simulate_cite(
    out: Path, scale, plan: pd.DataFrame, cell_ids: np.ndarray, seed: int, raw: bool, extras: bool
) -> CiteResult:
    """Write the CITEseq files of a synthetic competition.

    Parameters
    ----------
    out : pathlib.Path
        The competition folder being built.
    scale : Scale
        CITEseq cell and gene counts.
    plan : pandas.DataFrame
        The CITEseq cells in file order, with the leaked rows marked.
    cell_ids : numpy.ndarray
        Id of each planned CITEseq cell.
    seed : int
        The competition's seed.
    raw : bool
        Also write the training RNA and ADT counts and the test RNA counts as ``*_raw.h5``.
    extras : bool
        Also write the extra day-2 donor-27678 file and its metadata.

    Returns
    -------
    CiteResult
        The hidden truth.
    """
    world_rng = np.random.default_rng([seed, 1])
    donors = Donors.sample(np.random.default_rng([seed, 0]))
    world = CiteWorld.sample(world_rng, scale.cite_genes, donors)
    state_rng = np.random.default_rng([seed, 2])
    states = sample_states(
        state_rng, donors, plan["donor"].to_numpy(), plan["day"].to_numpy(), LIBRARY_PER_GENE * scale.cite_genes
    )
    is_train = (plan["split"] == "train").to_numpy()
    train_idx, test_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    leak = plan["leak"].to_numpy()[test_idx]
    leak_source = np.sort(state_rng.choice(len(train_idx), size=int(leak.sum()), replace=False))
    states.loc[test_idx[leak], ["lineage", "t", "cycling", "library", "adt_depth", "cell_type"]] = states.loc[
        train_idx[leak_source], ["lineage", "t", "cycling", "library", "adt_depth", "cell_type"]
    ].to_numpy()
    plan_donor = plan["donor"].to_numpy()
    result = CiteResult(
        test_targets=np.zeros((len(test_idx), len(layout.CITE_PROTEINS)), np.float32), train_target_mean=np.zeros(0)
    )
    stash = _write_train(out, world, states, plan_donor, train_idx, cell_ids, leak_source, seed, raw, result)
    _write_test(out, world, states, plan_donor, test_idx, cell_ids, leak, stash, seed, raw, result)
    result.oracle["public"] = result.oracle["test"][(plan["split"].to_numpy()[test_idx] == "public")]
    result.oracle["private"] = result.oracle["test"][(plan["split"].to_numpy()[test_idx] == "private")]
    result.cell_type = states["cell_type"].to_numpy()
    if extras:
        _write_day2_extra(out, scale, world, seed)
    return result


def _writers(
    out: Path, stems_columns: list[tuple[str, np.ndarray]], index: np.ndarray, raw: bool, truth: set[str] = frozenset()
) -> dict:
    """A writer per stem (under ``truth/`` for the stems in ``truth``), and with ``raw`` one for the public counts."""
    writers = {}
    for stem, columns in stems_columns:
        writers[stem] = frame_writer(out / layout.TRUTH_DIR if stem in truth else out, stem, index, columns)
        if raw and stem not in truth:
            writers[stem + layout.RAW_SUFFIX] = raw_writer(out, stem, index, columns)
    return writers


def _simulated_chunks(
    world: CiteWorld, states: pd.DataFrame, donor: np.ndarray, idx: np.ndarray, seed: int, stream: int, label: str
) -> Iterator[tuple[int, np.ndarray, CiteChunk]]:
    """Simulate the cells ``idx`` chunk by chunk, each from its own random stream: yield (start, rows, chunk)."""
    starts = range(0, len(idx), CHUNK_CELLS)
    for number, start in enumerate(track(starts, label, total=len(starts))):
        rows = idx[start : start + CHUNK_CELLS]
        rng = np.random.default_rng([seed, stream, number])
        yield start, rows, simulate_chunk(world, states.iloc[rows], donor[rows], rng)


def _write_train(out, world, states, donor, train_idx, cell_ids, leak_source, seed, raw, result) -> dict:
    """Write the training matrices; return the leaked cells' chunk fields, in ``leak_source`` order."""
    stems = [(layout.CITE.train_inputs, world.genes), (layout.CITE.train_targets, PROTEINS)]
    writers = _writers(out, stems, cell_ids[train_idx], raw)
    oracle, target_sum = [], np.zeros(len(PROTEINS))
    stash = {key: [] for key in _STASHED}
    with all_or_nothing(writers.values()):
        for start, rows, chunk in _simulated_chunks(
            world, states, donor, train_idx, seed, TRAIN_STREAM, "CITEseq train"
        ):
            _write_chunk(writers, chunk, layout.CITE.train_inputs, layout.CITE.train_targets, raw)
            oracle.append(chunk.oracle)
            target_sum += chunk.targets.sum(axis=0, dtype=np.float64)
            local = leak_source[(leak_source >= start) & (leak_source < start + len(rows))] - start
            for key in stash:
                stash[key].append(getattr(chunk, key)[local])
    result.oracle["train"] = np.concatenate(oracle) if oracle else np.zeros(0)
    result.train_target_mean = target_sum / max(1, len(train_idx))
    return {key: np.concatenate(value) for key, value in stash.items()}


def _write_chunk(writers, chunk, input_stem, target_stem, raw) -> None:
    writers[input_stem].write(chunk.inputs)
    writers[target_stem].write(chunk.targets)
    if raw:
        writers[input_stem + layout.RAW_SUFFIX].write(chunk.input_counts)
        if target_stem + layout.RAW_SUFFIX in writers:
            writers[target_stem + layout.RAW_SUFFIX].write(chunk.target_counts)


def _write_test(out, world, states, donor, test_idx, cell_ids, leak, stash, seed, raw, result) -> None:
    """Write the test inputs and hidden targets; leaked rows are exact copies of their train cells."""
    stems = [(layout.CITE.test_inputs, world.genes), (TEST_TARGETS, PROTEINS)]
    writers = _writers(out, stems, cell_ids[test_idx], raw, truth={TEST_TARGETS})
    leak_position = np.cumsum(leak) - 1
    oracle = []
    with all_or_nothing(writers.values()):
        for start, rows, chunk in _simulated_chunks(world, states, donor, test_idx, seed, TEST_STREAM, "CITEseq test"):
            copied = np.flatnonzero(leak[start : start + len(rows)])
            for key in stash:
                getattr(chunk, key)[copied] = stash[key][leak_position[start + copied]]
            _write_chunk(writers, chunk, layout.CITE.test_inputs, TEST_TARGETS, raw)
            result.test_targets[start : start + len(rows)] = chunk.targets
            oracle.append(chunk.oracle)
    result.oracle["test"] = np.concatenate(oracle) if oracle else np.zeros(0)


def _write_day2_extra(out: Path, scale, world: CiteWorld, seed: int) -> None:
    """The organisers' corrected day-2 donor-27678 file: more genes, stored in two blocks."""
    rng = np.random.default_rng([seed, DAY2_EXTRA_STREAM])
    n_cells, n_columns = scale.cite_day2_extra
    n_extra = n_columns - len(world.genes)
    extra_ids = names.ensembl_ids(rng, n_extra, exclude={g.split("_")[0] for g in world.genes})
    columns = np.concatenate([world.genes, names.gene_names(extra_ids, names.synthetic_symbols(rng, n_extra))])
    order = np.argsort(columns, kind="stable")  # axis0 is sorted by gene id, so the blocks interleave
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    extra_model = GeneModel.sample(rng, n_extra)
    donor = np.full(n_cells, layout.PUBLIC_DONOR)
    states = sample_states(rng, world.donors, donor, np.full(n_cells, 2), LIBRARY_PER_GENE * n_columns)
    ids = np.asarray([f"{v:012x}" for v in rng.integers(0, 16**12, n_cells)], dtype=object)
    blocks = [position[: len(world.genes)], position[len(world.genes) :]]
    with frame_writer(out, layout.CITE_DAY2_EXTRA, ids, columns[order], blocks=blocks) as writer:
        for start in range(0, n_cells, CHUNK_CELLS):
            part = states.iloc[start : start + CHUNK_CELLS]
            counts = _day2_extra_counts(rng, world, extra_model, part, donor[start : start + len(part)])
            writer.write(normalise_log1p(counts)[:, order])
    meta = pd.DataFrame(
        {
            "cell_id": ids,
            "day": 2,
            "donor": layout.PUBLIC_DONOR,
            "cell_type": states["cell_type"],
            "technology": "citeseq",
        }
    )
    write_metadata(out / layout.CITE_DAY2_EXTRA_METADATA, meta)


def _day2_extra_counts(rng, world: CiteWorld, extra_model: GeneModel, states: pd.DataFrame, donor) -> np.ndarray:
    """RNA counts of the known genes, then of the extra genes, for one chunk of cells."""
    program, donor_row, library = programs(states), world.donors.index(donor), states["library"].to_numpy()
    return np.concatenate(
        [
            sample_nb(rng, model.mean_counts(program, donor_row, library), model.theta)
            for model in (world.gene_model, extra_model)
        ],
        axis=1,
    )
