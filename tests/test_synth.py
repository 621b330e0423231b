"""The synthetic competition reproduces the Kaggle layout and facts."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import tables

from mmscel.data import layout
from mmscel.data.synth.generate import generate
from mmscel.data.synth.scales import SCALES
from mmscel.fsutil import file_checksum

H5_FILES = [f"{s}.h5" for s in layout.H5_STEMS]
CSV_FILES = ["metadata.csv", "evaluation_ids.csv", "sample_submission.csv"]


def test_every_file_of_the_layout(tiny_source):
    names = {p.name for p in tiny_source.iterdir()}
    assert set(H5_FILES + CSV_FILES) <= names
    assert {f"{layout.CITE_DAY2_EXTRA}.h5", layout.CITE_DAY2_EXTRA_METADATA} <= names
    assert {f"{s}_raw.h5" for s in layout.H5_STEMS} <= names
    truth = {p.name for p in (tiny_source / "truth").iterdir()}
    assert {"truth.json", "solution.parquet", "test_cite_targets.h5", "test_multi_targets.h5"} <= truth


@pytest.mark.parametrize("stem", layout.H5_STEMS)
def test_h5_files_are_blosc_pandas_frames(tiny_source, stem):
    path = tiny_source / f"{stem}.h5"
    with tables.open_file(path) as h5:
        group = h5.get_node(f"/{stem}")
        assert {"axis0", "axis1", "block0_items", "block0_values"} <= set(group._v_children)
        assert group.block0_values.filters.complib == "blosc"
        assert group.block0_values.atom.dtype == np.float32
    frame = pd.read_hdf(path)
    assert frame.index.name == "cell_id" and frame.columns.name == "gene_id"
    assert frame.index.map(lambda c: bool(re.fullmatch(r"[0-9a-f]{12}", c))).all()


def test_shapes_and_names(tiny_source):
    truth = json.loads((tiny_source / "truth" / "truth.json").read_text())
    cite_in = pd.read_hdf(tiny_source / "train_cite_inputs.h5")
    cite_tg = pd.read_hdf(tiny_source / "train_cite_targets.h5")
    multi_in = pd.read_hdf(tiny_source / "test_multi_inputs.h5")
    multi_tg = pd.read_hdf(tiny_source / "train_multi_targets.h5")
    assert list(cite_in.shape) == truth["shapes"]["cite"]["train_inputs"]
    assert list(multi_in.shape) == truth["shapes"]["multi"]["test_inputs"]
    assert list(cite_tg.columns) == list(layout.CITE_PROTEINS)
    assert all(re.fullmatch(r"ENSG\d{11}_[A-Za-z0-9.\-]+", g) for g in cite_in.columns)
    assert "ENSG00000121410_A1BG" in cite_in.columns
    symbols = {g.split("_", 1)[1] for g in cite_in.columns}
    assert len(symbols & set(layout.CITE_PROTEINS)) > 10  # genes carrying a target protein's symbol
    assert all(re.fullmatch(r"ENSG\d{11}", g) for g in multi_tg.columns)
    peaks = list(multi_in.columns)
    assert all(re.fullmatch(r"(chr[0-9XY]+|GL\d+\.\d|KI\d+\.\d):\d+-\d+", p) for p in peaks)
    assert any(p.startswith(("GL", "KI")) for p in peaks)
    assert peaks[0].startswith("chr1:") and peaks[-1].startswith(("GL", "KI"))


def test_values_look_like_the_competition(tiny_source):
    cite_in = pd.read_hdf(tiny_source / "train_cite_inputs.h5").to_numpy()
    assert 0.7 < (cite_in == 0).mean() < 0.86
    multi_in = pd.read_hdf(tiny_source / "train_multi_inputs.h5").to_numpy()
    assert 0.01 < (multi_in != 0).mean() < 0.04
    targets = pd.read_hdf(tiny_source / "train_cite_targets.h5")
    assert (targets.to_numpy() < 0).any()
    isotypes = targets[list(layout.ISOTYPE_CONTROLS)].to_numpy()
    assert np.abs(isotypes.mean()) < 0.5 < targets.to_numpy().mean()  # controls carry background only
    raw = pd.read_hdf(tiny_source / "train_cite_inputs_raw.h5").to_numpy()
    np.testing.assert_array_equal(raw, np.round(raw))


def test_metadata_follows_the_competition_design(tiny_source):
    meta = pd.read_csv(tiny_source / "metadata.csv")
    assert list(meta.columns) == list(layout.METADATA_COLUMNS)
    assert meta["cell_id"].is_unique
    assert set(meta["cell_type"]) - {"hidden"} <= set(layout.CELL_TYPES)
    for task, technology in (("cite", "citeseq"), ("multi", "multiome")):
        spec = layout.task(task)
        cells = meta[meta["technology"] == technology].set_index("cell_id")
        train_ids = pd.read_hdf(tiny_source / f"{spec.train_inputs}.h5").index
        test_ids = pd.read_hdf(tiny_source / f"{spec.test_inputs}.h5").index
        train, test = cells.loc[train_ids], cells.loc[test_ids]
        assert set(train["donor"]) == set(layout.TRAIN_DONORS)
        assert set(train["day"]) == set(spec.days[:-1])
        private = test[test["day"] == spec.last_day]
        public = test[test["day"] != spec.last_day]
        assert set(private["donor"]) == set(layout.DONORS)
        assert set(public["donor"]) == {layout.PUBLIC_DONOR}
        if task == "multi":
            assert 4 not in set(public["day"])
            assert (test["cell_type"] == "hidden").all() and (train["cell_type"] != "hidden").all()
    assert len(meta) == json.loads((tiny_source / "truth" / "truth.json").read_text())["shapes"]["metadata_rows"]


def test_female_donor_has_no_chr_y(tiny_source):
    meta = pd.read_csv(tiny_source / "metadata.csv").set_index("cell_id")
    atac = pd.read_hdf(tiny_source / "train_multi_inputs.h5")
    chr_y = [p for p in atac.columns if p.startswith("chrY:")]
    assert chr_y
    female = meta.loc[atac.index, "donor"].to_numpy() == layout.FEMALE_DONOR
    assert (atac.loc[female, chr_y].to_numpy() == 0).all()
    assert (atac.loc[~female, chr_y].to_numpy() != 0).any()


def test_evaluation_ids_order(tiny_source):
    evaluation = pd.read_csv(tiny_source / "evaluation_ids.csv")
    sample = pd.read_csv(tiny_source / "sample_submission.csv")
    assert list(evaluation.columns) == list(layout.EVALUATION_COLUMNS) and list(sample.columns) == ["row_id", "target"]
    assert (evaluation["row_id"].to_numpy() == np.arange(len(evaluation))).all()
    assert (sample["row_id"] == evaluation["row_id"]).all()
    cite_test = pd.read_hdf(tiny_source / "test_cite_inputs.h5").index
    n_cite = len(cite_test) * 140
    head = evaluation.iloc[:n_cite]
    assert (head["cell_id"].to_numpy() == np.repeat(cite_test, 140)).all()
    assert (head["gene_id"].to_numpy() == np.tile(layout.CITE_PROTEINS, len(cite_test))).all()
    multi = evaluation.iloc[n_cite:]
    n_cells, n_genes = SCALES["tiny"].multi_scored
    assert multi["cell_id"].nunique() == n_cells and len(multi) == n_cells * n_genes
    multi_test = pd.read_hdf(tiny_source / "test_multi_inputs.h5").index
    order = multi_test.get_indexer(multi["cell_id"].drop_duplicates())
    assert (order >= 0).all() and (np.diff(order) > 0).all()
    genes = pd.read_hdf(tiny_source / "train_multi_targets.h5", start=0, stop=1).columns
    positions = genes.get_indexer(multi["gene_id"]).reshape(n_cells, n_genes)
    assert (positions >= 0).all() and (np.diff(positions, axis=1) > 0).all()
    assert len({tuple(row) for row in positions}) > 1  # genes differ from cell to cell


def test_solution_matches_the_truth_files(tiny_source):
    solution = pd.read_parquet(tiny_source / "truth" / "solution.parquet")
    evaluation = pd.read_csv(tiny_source / "evaluation_ids.csv")
    assert (solution["row_id"].to_numpy() == evaluation["row_id"].to_numpy()).all()
    cite = pd.read_hdf(tiny_source / "truth" / "test_cite_targets.h5")
    n_cite = cite.size
    np.testing.assert_array_equal(solution["target"].to_numpy()[:n_cite], cite.to_numpy().ravel())
    multi = pd.read_hdf(tiny_source / "truth" / "test_multi_targets.h5")
    rows = evaluation.iloc[n_cite:]
    expected = multi.to_numpy()[multi.index.get_indexer(rows["cell_id"]), multi.columns.get_indexer(rows["gene_id"])]
    np.testing.assert_array_equal(solution["target"].to_numpy()[n_cite:], expected)
    meta = pd.read_csv(tiny_source / "metadata.csv").set_index("cell_id")
    days = meta.loc[evaluation["cell_id"], "day"].to_numpy()
    last = np.where(solution["task"] == "cite", 7, 10)
    assert ((solution["split"] == "private").to_numpy() == (days == last)).all()


def test_truth_json_oracle_beats_the_floor(tiny_source):
    truth = json.loads((tiny_source / "truth" / "truth.json").read_text())
    for task in ("cite", "multi"):
        for split in ("train", "public", "private"):
            assert 0.3 < truth["oracle"][task][split] < 0.99  # count noise keeps it well below 1
        for split in ("public", "private"):
            assert truth["oracle"][task][split] > truth["mean_profile"][task][split] + 0.05
    assert truth["oracle"]["leaderboard"]["private"] > truth["mean_profile"]["leaderboard"]["private"]
    assert "exact" in truth["oracle_method"] or "summed" in truth["oracle_method"]
    assert truth["seed"] == 0 and truth["scale"] == "tiny"


def test_reachable_reference_sits_between_floor_and_oracle(tiny_source):
    truth = json.loads((tiny_source / "truth" / "truth.json").read_text())
    assert truth["reachable"]["cite"] == truth["oracle"]["cite"]
    for split in ("public", "private"):
        assert (
            truth["mean_profile"]["multi"][split] + 0.05
            < truth["reachable"]["multi"][split]
            < truth["oracle"]["multi"][split]
        )
    references = pd.read_parquet(tiny_source / "truth" / layout.TRAIN_REFERENCES)
    metadata = pd.read_csv(tiny_source / "metadata.csv").set_index("cell_id")
    for task in ("cite", "multi"):
        rows = references[references["task"] == task]
        assert rows["cell_id"].isin(metadata.index).all() and rows["cell_id"].is_unique
        assert rows["oracle"].mean() == pytest.approx(truth["oracle"][task]["train"], abs=1e-6)
        assert rows["reachable"].mean() == pytest.approx(truth["reachable"][task]["train"], abs=1e-6)
    assert (references["task"] == "cite").sum() == SCALES["tiny"].cite_train


def test_chromatin_averaged_mean_is_the_average_over_open_states():
    from mmscel.data.synth.biology import N_PROGRAMS, Donors
    from mmscel.data.synth.multi import MultiWorld, chromatin_averaged_mean

    world = MultiWorld.sample(np.random.default_rng(0), 400, 60, Donors.sample(np.random.default_rng(1)))
    rng = np.random.default_rng(2)
    program, donor_row, library = rng.random((3, N_PROGRAMS)), np.array([0, 1, 2]), np.full(3, 5000.0)
    probability = world.peak_model.open_probability(program, donor_row)
    averaged = chromatin_averaged_mean(world, program, donor_row, library, probability)
    draws = 20_000
    total = np.zeros_like(averaged)
    for _ in range(draws // 1000):
        open_state = rng.random((1000, *probability.shape)) < probability
        cis = np.einsum("dcp,gp->dcg", open_state, world.links.toarray())
        total += np.exp(cis).sum(axis=0)
    sampled = world.gene_model.mean_counts(program, donor_row, library, extra=np.log(total / draws))
    linked = np.asarray(world.links.sum(axis=1)).ravel() != 0
    assert linked.any()
    np.testing.assert_allclose(averaged[:, linked], sampled[:, linked], rtol=0.03)


def test_last_day_is_more_mature_than_any_training_day(tiny_source):
    from mmscel.data.synth.biology import MATURITY_BY_DAY

    for spec in (layout.CITE, layout.MULTI):
        assert MATURITY_BY_DAY[spec.last_day] > max(MATURITY_BY_DAY[d] for d in spec.days[:-1])
    meta = pd.read_csv(tiny_source / "metadata.csv")
    cite = meta[(meta["technology"] == "citeseq") & (meta["cell_type"] != "hidden")]
    hsc_share = cite.groupby("day")["cell_type"].apply(lambda s: (s == "HSC").mean())
    assert hsc_share[7] < hsc_share[2]


def test_cite_leak_rows_duplicate_train_rows(tiny_source):
    truth = json.loads((tiny_source / "truth" / "truth.json").read_text())
    train = pd.read_hdf(tiny_source / "train_cite_inputs.h5")
    test = pd.read_hdf(tiny_source / "test_cite_inputs.h5")
    train_rows = {row.tobytes() for row in train.to_numpy()}
    duplicates = sum(row.tobytes() in train_rows for row in test.to_numpy())
    assert duplicates == truth["cite_leak_rows"] == SCALES["tiny"].cite_leak_rows > 0


def test_day2_extra_file_has_two_blocks_and_more_genes(tiny_source):
    path = tiny_source / f"{layout.CITE_DAY2_EXTRA}.h5"
    with tables.open_file(path) as h5:
        group = h5.get_node(f"/{layout.CITE_DAY2_EXTRA}")
        assert "block1_values" in group._v_children
    extra = pd.read_hdf(path)
    train_columns = pd.read_hdf(tiny_source / "train_cite_inputs.h5", start=0, stop=1).columns
    assert extra.shape == SCALES["tiny"].cite_day2_extra
    assert set(train_columns) < set(extra.columns)
    meta = pd.read_csv(tiny_source / layout.CITE_DAY2_EXTRA_METADATA)
    assert list(meta["cell_id"]) == list(extra.index)
    assert set(meta["day"]) == {2} and set(meta["donor"]) == {layout.PUBLIC_DONOR}


def test_deterministic_for_a_seed(tiny_source, tmp_path):
    again = tmp_path / "again"
    generate(again, "tiny", seed=0, raw=True)
    names = sorted(
        str(p.relative_to(tiny_source)) for p in tiny_source.rglob("*") if p.is_file() and ".cache" not in p.parts
    )
    assert len(names) > 20
    for name in names:  # byte-identical, so fingerprints of regenerated data match
        assert file_checksum(again / name) == file_checksum(tiny_source / name), name
    other = tmp_path / "other"
    generate(other, "tiny", seed=1, extras=False)
    assert file_checksum(other / "metadata.csv") != file_checksum(tiny_source / "metadata.csv")
    assert not (other / f"{layout.CITE_DAY2_EXTRA}.h5").exists()


def test_full_scale_reproduces_the_competition_shapes():
    full = SCALES["full"]
    assert (full.cite_train, full.cite_test, full.cite_genes) == (70_988, 48_663, 22_050)
    assert (full.multi_train, full.multi_test, full.multi_peaks, full.multi_genes) == (105_942, 55_935, 228_942, 23_418)
    assert full.cite_train + full.cite_test + full.multi_train + full.multi_test == layout.FULL_METADATA_ROWS
    cells, genes = full.multi_scored
    assert full.cite_test * 140 + cells * genes == layout.FULL_SUBMISSION_ROWS
    assert full.cite_leak_rows == 7_476 and full.cite_day2_extra == (7_016, 22_085)
    tiny = SCALES["tiny"]
    assert 1_500 < tiny.cite_train + tiny.cite_test + tiny.multi_train + tiny.multi_test < 2_500
    small = SCALES["small"]
    assert 18_000 < small.cite_train + small.cite_test + small.multi_train + small.multi_test < 22_000


def test_refuses_to_overwrite_a_non_empty_folder(tiny_source):
    from mmscel.errors import InputError

    with pytest.raises(InputError, match="not empty"):
        generate(tiny_source, "tiny", seed=0)
