"""Simulate the CITEseq task: RNA of ~22,050 genes in, 140 surface proteins out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmscel.data import layout
from mmscel.data.competition import write_metadata
from mmscel.data.h5io import FrameWriter
from mmscel.data.synth import names
from mmscel.data.synth.biology import Donors, programs, sample_states
from mmscel.data.synth.modalities import ADT_THETA, RNA_SCALE, GeneModel, ProteinModel
from mmscel.data.synth.noise import expected_log1p_nb, sample_nb
from mmscel.metrics import pearson_per_row
from mmscel.progress import track

CHUNK_CELLS = 512
LIBRARY_PER_GENE = 0.42  # expected RNA counts per gene and cell: ~78% zeros


@dataclass
class CiteWorld:
    """Everything sampled once for the CITEseq task."""

    genes: np.ndarray
    gene_model: GeneModel
    protein_model: ProteinModel
    donors: Donors

    @classmethod
    def sample(cls, rng: np.random.Generator, n_genes: int, donors: Donors) -> CiteWorld:
        """Sample names, gene and protein models; genes named after a protein follow it loosely."""
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
    """One chunk of simulated cells: inputs, targets, raw counts and oracle."""

    inputs: np.ndarray
    targets: np.ndarray
    input_counts: np.ndarray
    target_counts: np.ndarray
    oracle: np.ndarray  # per-cell Pearson of E[y | state] with y


def simulate_chunk(world: CiteWorld, states: pd.DataFrame, donor: np.ndarray, rng: np.random.Generator) -> CiteChunk:
    """Draw RNA inputs and protein targets of the given cells, and score the oracle on them."""
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
    """log1p of counts scaled to 10,000 per cell (zeros stay zeros)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.log1p(counts * (RNA_SCALE / np.maximum(totals, 1.0))).astype(np.float32)


@dataclass
class CiteResult:
    """What the leaderboard and truth.json need from the CITEseq simulation."""

    test_targets: np.ndarray
    train_target_mean: np.ndarray
    oracle: dict[str, np.ndarray] = field(default_factory=dict)
    cell_type: np.ndarray | None = None


def simulate_cite(
    out: Path, scale, plan: pd.DataFrame, cell_ids: np.ndarray, seed: int, raw: bool, extras: bool
) -> CiteResult:
    """Write the CITEseq files of a synthetic competition; return its truth."""
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
):
    writers = {}
    for stem, columns in stems_columns:
        folder = out / layout.TRUTH_DIR if stem in truth else out
        writers[stem] = FrameWriter(folder / f"{stem}.h5", stem, index, columns)
        if raw and stem not in truth:
            writers[stem + layout.RAW_SUFFIX] = FrameWriter(
                out / f"{stem}{layout.RAW_SUFFIX}.h5", stem + layout.RAW_SUFFIX, index, columns
            )
    return writers


def _close(writers: dict, ok: bool) -> None:
    for writer in writers.values():
        writer.close() if ok else writer.abort()


def _write_train(out, world, states, donor, train_idx, cell_ids, leak_source, seed, raw, result):
    stems = [
        (layout.CITE.train_inputs, world.genes),
        (layout.CITE.train_targets, np.asarray(layout.CITE_PROTEINS, dtype=object)),
    ]
    writers = _writers(out, stems, cell_ids[train_idx], raw)
    oracle, target_sum = [], np.zeros(len(layout.CITE_PROTEINS))
    stash = {"inputs": [], "targets": [], "input_counts": [], "target_counts": [], "oracle": []}
    ok = False
    try:
        starts = range(0, len(train_idx), CHUNK_CELLS)
        for number, start in enumerate(track(starts, "CITEseq train", total=len(starts))):
            rows = train_idx[start : start + CHUNK_CELLS]
            chunk = simulate_chunk(world, states.iloc[rows], donor[rows], np.random.default_rng([seed, 10, number]))
            _write_chunk(writers, chunk, layout.CITE.train_inputs, layout.CITE.train_targets, raw)
            oracle.append(chunk.oracle)
            target_sum += chunk.targets.sum(axis=0, dtype=np.float64)
            local = leak_source[(leak_source >= start) & (leak_source < start + len(rows))] - start
            for key in stash:
                stash[key].append(getattr(chunk, key)[local])
        ok = True
    finally:
        _close(writers, ok)
    result.oracle["train"] = np.concatenate(oracle) if oracle else np.zeros(0)
    result.train_target_mean = target_sum / max(1, len(train_idx))
    return {key: np.concatenate(value) for key, value in stash.items()}


def _write_chunk(writers, chunk, input_stem, target_stem, raw):
    writers[input_stem].write(chunk.inputs)
    writers[target_stem].write(chunk.targets)
    if raw:
        writers[input_stem + layout.RAW_SUFFIX].write(chunk.input_counts)
        if target_stem + layout.RAW_SUFFIX in writers:
            writers[target_stem + layout.RAW_SUFFIX].write(chunk.target_counts)


def _write_test(out, world, states, donor, test_idx, cell_ids, leak, stash, seed, raw, result):
    truth_stem = "test_cite_targets"
    stems = [(layout.CITE.test_inputs, world.genes), (truth_stem, np.asarray(layout.CITE_PROTEINS, dtype=object))]
    writers = _writers(out, stems, cell_ids[test_idx], raw, truth={truth_stem})
    leak_position = np.cumsum(leak) - 1
    oracle = []
    ok = False
    try:
        starts = range(0, len(test_idx), CHUNK_CELLS)
        for number, start in enumerate(track(starts, "CITEseq test", total=len(starts))):
            rows = test_idx[start : start + CHUNK_CELLS]
            chunk = simulate_chunk(world, states.iloc[rows], donor[rows], np.random.default_rng([seed, 11, number]))
            copied = np.flatnonzero(leak[start : start + len(rows)])
            for key in stash:  # duplicated rows are exact copies of their train cells
                getattr(chunk, key)[copied] = stash[key][leak_position[start + copied]]
            _write_chunk(writers, chunk, layout.CITE.test_inputs, truth_stem, raw)
            result.test_targets[start : start + len(rows)] = chunk.targets
            oracle.append(chunk.oracle)
        ok = True
    finally:
        _close(writers, ok)
    result.oracle["test"] = np.concatenate(oracle) if oracle else np.zeros(0)


def _write_day2_extra(out: Path, scale, world: CiteWorld, seed: int) -> None:
    """The organisers' corrected day-2 donor-27678 file: more genes, stored in two blocks."""
    rng = np.random.default_rng([seed, 12])
    n_cells, n_columns = scale.cite_day2_extra
    n_extra = n_columns - len(world.genes)
    extra_ids = names.ensembl_ids(rng, n_extra, exclude={g.split("_")[0] for g in world.genes})
    extra_names = np.asarray(
        [f"{g}_{s}" for g, s in zip(extra_ids, names._synthetic_symbols(rng, n_extra))], dtype=object
    )
    columns = np.concatenate([world.genes, extra_names])
    order = np.argsort(columns, kind="stable")  # axis0 is sorted by gene id, so the blocks interleave
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    extra_model = GeneModel.sample(rng, n_extra)
    donor = np.full(n_cells, layout.PUBLIC_DONOR)
    states = sample_states(rng, world.donors, donor, np.full(n_cells, 2), LIBRARY_PER_GENE * n_columns)
    ids = np.asarray([f"{v:012x}" for v in rng.integers(0, 16**12, n_cells)], dtype=object)
    blocks = [position[: len(world.genes)], position[len(world.genes) :]]
    stem = layout.CITE_DAY2_EXTRA
    with FrameWriter(out / f"{stem}.h5", stem, ids, columns[order], blocks=blocks) as writer:
        for start in range(0, n_cells, CHUNK_CELLS):
            part = states.iloc[start : start + CHUNK_CELLS]
            program, donor_row, library = (
                programs(part),
                world.donors.index(donor[start : start + len(part)]),
                part["library"].to_numpy(),
            )
            counts = np.concatenate(
                [
                    sample_nb(rng, world.gene_model.mean_counts(program, donor_row, library), world.gene_model.theta),
                    sample_nb(rng, extra_model.mean_counts(program, donor_row, library), extra_model.theta),
                ],
                axis=1,
            )
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
