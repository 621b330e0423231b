"""How much of the Multiome oracle's headroom is reachable from the ATAC inputs at all (a diagnostic).

    python bench/multi_ceiling.py [--scale small] [--seed 0] [--cells 2000]

The synthetic Multiome oracle is E[y | state] with the *whole* state of a cell,
including which peaks happen to be open in it: each gene's mean depends on
the open state of the few peaks linked to it in cis, and each peak is open by
a per-cell coin flip. The ATAC counts reveal an open peak only when a fragment
is captured, so part of that state is invisible to any model. This script
re-draws the first chunks of training cells exactly as ``mmscel synth`` does
(same seeds, same world) and scores three predictors of the same RNA draw:

``oracle``            E[log1p(s X)] with the cell's true open peaks (truth.json's oracle);
``chromatin-averaged`` the same with the cis term averaged over the open-state
                       coin flips given the cell's programs and donor
                       (``chromatin_averaged_mean``; truth.json's ``reachable``
                       since generator version 2): what a model that knew the
                       cell's programs perfectly but saw none of its ATAC could reach;
``chromatin-averaged, donor unseen`` the same for a cell whose donor no model
                       has seen (donor CV, the public test donor): its per-gene
                       donor offsets swapped for each other training donor's,
                       the predictions averaged;
``mean profile``       the training mean (the floor).

If the chromatin-averaged score sits close to what the level-1 learners reach,
the gap to the oracle is the unobservable chromatin noise, not a weak model.
Writes ``bench/out/multi_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmscel.data import layout
from mmscel.data.synth import scales
from mmscel.data.synth.biology import Donors, sample_states
from mmscel.data.synth.modalities import RNA_SCALE
from mmscel.data.synth.multi import CHUNK_CELLS, LIBRARY_PER_GENE, MultiWorld, _simulate_chunk
from mmscel.data.synth.noise import expected_log1p_nb
from mmscel.data.synth.plan import plan_task
from mmscel.metrics import pearson_per_row

OUT = Path(__file__).resolve().parent / "out"


def _unseen_donor(world, mu_avg, donor, train_donors, offsets, theta, scale_factor) -> np.ndarray:
    """The chromatin-averaged prediction of a cell whose donor was never seen (as in donor CV and the
    public test donor): its per-gene donor offsets swapped for each other training donor's, averaged."""
    own = world.donors.index(donor)
    out = np.zeros(mu_avg.shape)
    for row, cell_donor in enumerate(donor):
        others = [world.donors.index(np.array([d]))[0] for d in train_donors if d != cell_donor]
        mu_others = mu_avg[row] * np.exp(offsets[others] - offsets[own[row]])
        out[row] = expected_log1p_nb(mu_others, theta, scale_factor[row]).mean(axis=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", type=int, default=2000, help="training cells to score (whole chunks from the start)")
    args = parser.parse_args()
    scale, seed = scales.SCALES[args.scale], args.seed
    plan_rng = np.random.default_rng([seed, 100])
    plan_task(plan_rng, layout.CITE, scale.cite_train, scale.cite_test, scale.cite_leak_rows)
    plan = plan_task(plan_rng, layout.MULTI, scale.multi_train, scale.multi_test)
    donors = Donors.sample(np.random.default_rng([seed, 0]))
    world = MultiWorld.sample(np.random.default_rng([seed, 21]), scale.multi_peaks, scale.multi_genes, donors)
    states = sample_states(
        np.random.default_rng([seed, 22]),
        donors,
        plan["donor"].to_numpy(),
        plan["day"].to_numpy(),
        LIBRARY_PER_GENE * scale.multi_genes,
    )
    train_idx = np.flatnonzero((plan["split"] == "train").to_numpy())
    donor = plan["donor"].to_numpy()
    scores = {"oracle": [], "chromatin-averaged": [], "chromatin-averaged, donor unseen": [], "mean profile": []}
    train_donors = np.unique(donor[train_idx])
    offsets = world.gene_model.donor_offset
    rna_all = []
    for number, start in enumerate(range(0, min(args.cells, len(train_idx)), CHUNK_CELLS)):
        rows = train_idx[start : start + CHUNK_CELLS]
        rng = np.random.default_rng([seed, 30, number])  # the chunk's own stream, as in synth
        counts, rna, mu, scale_factor, mu_avg = _simulate_chunk(
            world, states.iloc[rows], donor[rows], rng, np.arange(len(rows))
        )
        theta = world.gene_model.theta[None, :]
        scores["oracle"].append(pearson_per_row(rna, expected_log1p_nb(mu, theta, scale_factor[:, None])))
        scores["chromatin-averaged"].append(
            pearson_per_row(rna, expected_log1p_nb(mu_avg, theta, scale_factor[:, None]))
        )
        scores["chromatin-averaged, donor unseen"].append(
            pearson_per_row(rna, _unseen_donor(world, mu_avg, donor[rows], train_donors, offsets, theta, scale_factor))
        )
        rna_all.append(rna)
        print(
            f"chunk {number}: oracle {scores['oracle'][-1].mean():.4f}, chromatin-averaged {scores['chromatin-averaged'][-1].mean():.4f}",
            flush=True,
        )
    rna = np.vstack(rna_all)
    scores["mean profile"] = [pearson_per_row(rna, np.broadcast_to(rna.mean(axis=0), rna.shape))]
    result = {k: float(np.concatenate(v).mean()) for k, v in scores.items()}
    result["cells"] = int(len(rna))
    result["chromatin_averaged_share_of_headroom"] = (result["chromatin-averaged"] - result["mean profile"]) / (
        result["oracle"] - result["mean profile"]
    )
    result["rna_scale"] = RNA_SCALE
    result["scale"], result["seed"] = args.scale, seed
    OUT.mkdir(exist_ok=True)
    (OUT / "multi_ceiling.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
