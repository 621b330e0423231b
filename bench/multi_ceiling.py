"""How much of the synthetic Multiome headroom any model can reach from the inputs (a diagnostic).

    python bench/multi_ceiling.py [--data bench/out/small] [--out bench/out]

The synthetic Multiome oracle is E[y | state] with the *whole* state of a cell, including which of
each gene's cis-linked peaks happen to be open in it: a per-cell coin flip that the sparse ATAC counts
reveal only where a fragment was captured. DATA is a synthetic competition (``mmscel synth``; generated
at ``small`` scale, seed 0, when the default folder is missing). On its Multiome reference cells
(``truth/train_references.parquet``) this scores predictors of the cells' drawn RNA
(``train_multi_targets.h5``):

oracle                             E[log1p(s X)] with the cell's true open peaks (synth's oracle);
chromatin-averaged                 the same with the open states averaged out given the cell's programs and
                                   donor (synth's reachable reference): what a model that knew each cell's
                                   programs exactly but not which peaks are open could reach;
chromatin-averaged, donor unseen   the same for a cell whose donor no model has seen (donor CV, the public
                                   test donor): its per-gene donor offsets replaced by each other training
                                   donor's, the predictions averaged;
mean profile                       the mean of every training cell's RNA (the floor).

The world (peaks, genes, donors, cell states) is re-drawn from the seeds of ``truth.json`` with the
generator's own functions; the chromatin-averaged scores recomputed here must equal synth's reachable
reference cell by cell, which checks the re-draw. Writes ``OUT/multi_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_out_argument, save_result, synthetic_competition
from mmscel.data import layout
from mmscel.data.synth import scales
from mmscel.data.synth.biology import Donors, programs, sample_states
from mmscel.data.synth.modalities import RNA_SCALE
from mmscel.data.synth.multi import LIBRARY_PER_GENE, MultiWorld, chromatin_averaged_mean
from mmscel.data.synth.noise import expected_log1p_nb
from mmscel.data.synth.plan import plan_task
from mmscel.metrics import pearson_per_row

CHUNK = 256  # cells at a time (the open probabilities are cells x peaks)


def multiome_world(scale_name: str, seed: int):
    """The Multiome plan, world and cell states, drawn from the same seeds and in the same order as synth."""
    scale = scales.SCALES[scale_name]
    plan_rng = np.random.default_rng([seed, 100])
    plan_task(plan_rng, layout.CITE, scale.cite_train, scale.cite_test, scale.cite_leak_rows)
    plan = plan_task(plan_rng, layout.MULTI, scale.multi_train, scale.multi_test)
    donors = Donors.sample(np.random.default_rng([seed, 0]))
    world = MultiWorld.sample(np.random.default_rng([seed, 21]), scale.multi_peaks, scale.multi_genes, donors)
    donor, day = plan["donor"].to_numpy(), plan["day"].to_numpy()
    states = sample_states(np.random.default_rng([seed, 22]), donors, donor, day, LIBRARY_PER_GENE * scale.multi_genes)
    return plan, world, states


def chromatin_averaged(world, states: pd.DataFrame, donor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected RNA counts with the open states averaged out, and each cell's RNA scale factor."""
    program = programs(states)
    donor_row = world.donors.index(donor)
    library = states["library"].to_numpy()
    probability = world.peak_model.open_probability(program, donor_row)
    return chromatin_averaged_mean(world, program, donor_row, library, probability), RNA_SCALE / library


def donor_unseen(world, mu: np.ndarray, donor: np.ndarray, train_donors: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The chromatin-averaged prediction with each cell's donor offsets replaced by every other training donor's."""
    offsets, theta = world.gene_model.donor_offset, world.gene_model.theta
    own = world.donors.index(donor)
    out = np.zeros(mu.shape)
    for row, cell_donor in enumerate(donor):
        others = world.donors.index(np.array([d for d in train_donors if d != cell_donor]))
        mu_others = mu[row] * np.exp(offsets[others] - offsets[own[row]])
        out[row] = expected_log1p_nb(mu_others, theta, scale[row]).mean(axis=0)
    return out


def ceiling(data: Path) -> dict:
    truth = json.loads((data / "truth" / "truth.json").read_text())
    plan, world, states = multiome_world(truth["scale"], truth["seed"])
    references = pd.read_parquet(data / "truth" / "train_references.parquet")
    references = references[references["task"] == "multi"]
    targets = pd.read_hdf(data / "train_multi_targets.h5")
    positions = targets.index.get_indexer(references["cell_id"])
    train_rows = np.flatnonzero((plan["split"] == "train").to_numpy())[positions]
    donor = plan["donor"].to_numpy()
    train_donors = np.unique(donor[np.flatnonzero((plan["split"] == "train").to_numpy())])
    rna_all = targets.to_numpy()
    scores = {"chromatin-averaged": [], "chromatin-averaged, donor unseen": []}
    for start in range(0, len(positions), CHUNK):
        rows, rna = train_rows[start : start + CHUNK], rna_all[positions[start : start + CHUNK]]
        mu, scale = chromatin_averaged(world, states.iloc[rows], donor[rows])
        expected = expected_log1p_nb(mu, world.gene_model.theta[None, :], scale[:, None])
        scores["chromatin-averaged"].append(pearson_per_row(rna, expected))
        unseen = donor_unseen(world, mu, donor[rows], train_donors, scale)
        scores["chromatin-averaged, donor unseen"].append(pearson_per_row(rna, unseen))
    rna = rna_all[positions]
    floor = pearson_per_row(rna, np.broadcast_to(rna_all.mean(axis=0), rna.shape))
    averaged = np.concatenate(scores["chromatin-averaged"])
    return {
        "scale": truth["scale"],
        "seed": truth["seed"],
        "cells": int(len(positions)),
        "oracle": float(references["oracle"].mean()),
        "chromatin-averaged": float(averaged.mean()),
        "chromatin-averaged, donor unseen": float(np.concatenate(scores["chromatin-averaged, donor unseen"]).mean()),
        "mean profile": float(floor.mean()),
        "max_diff_to_synth_reachable": float(np.abs(averaged - references["reachable"].to_numpy()).max()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="synthetic competition (default OUT/small)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    data = args.data or synthetic_competition("small", args.out)
    result = ceiling(data)
    if result["max_diff_to_synth_reachable"] > 1e-5:
        raise SystemExit(f"the re-drawn world does not match {data}: {result}")
    path = save_result(args.out, "multi_ceiling", result["scale"], result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
