"""Raw counts in imported AnnData: detected, and processed as the competition's files are (or kept, or refused)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.mixture import GaussianMixture

from conftest import run_cli
from mmscel.data.anndata_import import import_anndata
from mmscel.data.dsb import background_mean, dsb
from mmscel.errors import InputError
from mmscel.metrics import mean_pearson

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-data"
CITE_DIR = REAL / "bmmc_cite_starter"
CITE_FILES = {
    "inputs": CITE_DIR / "train_mod1.h5ad",
    "targets": CITE_DIR / "train_mod2.h5ad",
    "test_inputs": CITE_DIR / "test_mod1.h5ad",
    "test_targets": CITE_DIR / "test_mod2.h5ad",
}
MUON = REAL / "pbmc_multiome_muon" / "pbmc_rna_atac.h5mu"
PBMC = REAL / "pbmc_citeseq_10x" / "pbmc_5k_protein_v3.h5ad"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent")


def dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sparse.issparse(matrix) else matrix, dtype=np.float64)


def source(path: Path) -> anndata.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anndata.read_h5ad(path)


def log1p_cp10k(counts: np.ndarray) -> np.ndarray:
    return np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e4)


def written(path: Path) -> np.ndarray:
    return pd.read_hdf(path).to_numpy()


@pytest.mark.realdata
@needs_real
def test_cite_counts_become_log1p_cp10k_rna_and_clr_proteins(tmp_path):
    out = tmp_path / "cite"
    summary = import_anndata(out, "cite", **CITE_FILES, layer="counts")
    assert summary["values"].startswith("values: inputs: raw counts -> log1p CP10k")
    assert "targets: raw counts -> CLR per cell" in summary["values"] and "\n" not in summary["values"]
    assert json.loads((out / "truth" / "truth.json").read_text())["values"] == summary["values"]
    rna = dense(source(CITE_FILES["inputs"]).layers["counts"])
    np.testing.assert_allclose(written(out / "train_cite_inputs.h5"), log1p_cp10k(rna), rtol=1e-5, atol=1e-5)
    for split, key in (("train_cite_targets.h5", "targets"), ("truth/test_cite_targets.h5", "test_targets")):
        adt = dense(source(CITE_FILES[key]).layers["counts"])
        clr = np.log1p(adt / np.exp(np.log1p(adt).mean(axis=1, keepdims=True)))
        np.testing.assert_allclose(written(out / split), clr, rtol=1e-5, atol=1e-5)
    # the benchmark's own .X holds CLR-normalised proteins: the same values, cell by cell
    assert mean_pearson(dense(source(CITE_FILES["targets"]).X), written(out / "train_cite_targets.h5")) > 0.999


@pytest.mark.realdata
@needs_real
def test_multiome_counts_become_tf_idf_atac_and_log1p_cp10k_rna(tmp_path):
    import mudata

    out = tmp_path / "muon"
    summary = import_anndata(out, "multi", mudata=MUON, test_fraction=0.3)
    assert (
        "inputs: raw counts -> TF-IDF" in summary["values"]
        and "targets: raw counts -> log1p CP10k" in summary["values"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.read_h5mu(MUON)
    atac, rna = dense(mdata.mod["atac"].X), dense(mdata.mod["rna"].X)
    cells = pd.Index(np.asarray(mdata.mod["atac"].obs_names, dtype=str))
    idf = len(atac) / np.where(atac.sum(axis=0) > 0, atac.sum(axis=0), 1)  # over every cell, train and test
    tf_idf = np.log1p(atac / np.maximum(atac.sum(axis=1, keepdims=True), 1) * idf * 1e4)
    train = pd.read_hdf(out / "train_multi_inputs.h5")
    np.testing.assert_allclose(train.to_numpy(), tf_idf[cells.get_indexer(train.index)], rtol=1e-5, atol=1e-5)
    truth = pd.read_hdf(out / "truth" / "test_multi_targets.h5")
    rows = pd.Index(np.asarray(mdata.mod["rna"].obs_names, dtype=str)).get_indexer(truth.index)
    np.testing.assert_allclose(truth.to_numpy(), log1p_cp10k(rna)[rows], rtol=1e-5, atol=1e-5)


@pytest.mark.realdata
@needs_real
def test_normalised_values_are_kept_and_counts_are_kept_when_asked(tmp_path):
    summary = import_anndata(tmp_path / "x", "cite", **CITE_FILES)
    assert summary["values"] == "values: imported as they are (no raw counts found)"
    kept = import_anndata(tmp_path / "kept", "cite", **CITE_FILES, layer="counts", counts="keep")
    assert kept["values"].startswith("values: kept as they are; the inputs and targets hold raw counts")
    counts = dense(source(CITE_FILES["inputs"]).layers["counts"])
    np.testing.assert_array_equal(written(tmp_path / "kept" / "train_cite_inputs.h5"), counts)


@pytest.mark.realdata
@needs_real
def test_normalise_refuses_values_that_are_not_counts(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as error:
        import_anndata(out, "cite", **CITE_FILES, counts="normalise")
    message = str(error.value)
    assert message.startswith(str(CITE_FILES["inputs"])) and "--counts normalise needs raw counts" in message
    assert "--layer counts" in message and "\n" not in message
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def _pair(tmp_path: Path, name: str, inputs, targets, cells) -> dict:
    obs = pd.DataFrame({"donor": ["d1"] * (len(cells) - 4) + ["d2"] * 4}, index=pd.Index(cells))
    paths = {}
    for role, values, prefix in (("inputs", inputs, "G"), ("targets", targets, "P")):
        var = pd.DataFrame(index=pd.Index([f"{prefix}{j}" for j in range(values.shape[1])]))
        paths[role] = tmp_path / f"{name}_{role}.h5ad"
        anndata.AnnData(X=values, obs=obs, var=var).write_h5ad(paths[role])
    return paths


def test_a_binarised_matrix_is_not_taken_for_counts_and_dense_counts_are_processed(tmp_path):
    rng = np.random.default_rng(0)
    cells = [f"c{i}" for i in range(16)]
    binary = sparse.csr_matrix((rng.random((16, 12)) < 0.3).astype(np.float32))
    adt = rng.poisson(20.0, (16, 5)).astype(np.float32)  # dense counts
    paths = _pair(tmp_path, "s", binary, adt, cells)
    summary = import_anndata(tmp_path / "out", "cite", **paths, split_by="donor", test_values=["d2"])
    assert summary["values"].startswith("values: targets: raw counts -> CLR per cell")
    np.testing.assert_array_equal(written(tmp_path / "out" / "train_cite_inputs.h5"), binary[:12].toarray())
    clr = np.log1p(adt / np.exp(np.log1p(adt.astype(np.float64)).mean(axis=1, keepdims=True)))
    np.testing.assert_allclose(written(tmp_path / "out" / "train_cite_targets.h5"), clr[:12], rtol=1e-5, atol=1e-6)


def test_train_counts_with_test_values_of_another_kind_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, (12, 6)).astype(np.float32)
    adt = rng.normal(size=(12, 3)).astype(np.float32)
    train = _pair(tmp_path, "train", sparse.csr_matrix(counts), adt, [f"c{i}" for i in range(12)])
    test = _pair(tmp_path, "test", np.log1p(counts[:8]), adt[:8], [f"t{i}" for i in range(8)])
    out = tmp_path / "out"
    with pytest.raises(InputError) as error:
        import_anndata(out, "cite", **train, test_inputs=test["inputs"], test_targets=test["targets"])
    assert str(error.value).startswith(str(test["inputs"])) and "but" in str(error.value)
    assert str(train["inputs"]) in str(error.value) and not out.exists()
    with pytest.raises(InputError, match="'maybe' is not one of auto, normalise, keep"):
        import_anndata(out, "cite", **train, counts="maybe")


def pbmc_pair() -> tuple[anndata.AnnData, anndata.AnnData]:
    """The 10x PBMC CITE-seq cells in memory: RNA counts in ``.X``, protein counts from ``obsm``."""
    rna = source(PBMC)
    names = [name.split("_")[0] for name in rna.uns["protein_names"]]
    counts = np.asarray(rna.obsm["protein_expression"], dtype=np.float32)
    adt = anndata.AnnData(X=counts, obs=pd.DataFrame(index=rna.obs_names.copy()), var=pd.DataFrame(index=names))
    return rna, adt


def imported_targets(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_hdf(out / "train_cite_targets.h5"), pd.read_hdf(out / "truth" / "test_cite_targets.h5")])


def upper_mode(values: np.ndarray) -> tuple[float, float]:
    """Mean and weight of the upper component of a two-component mixture."""
    mixture = GaussianMixture(n_components=2, random_state=0).fit(values[:, None])
    upper = int(np.argmax(mixture.means_.ravel()))
    return float(mixture.means_.ravel()[upper]), float(mixture.weights_[upper])


@pytest.mark.realdata
@needs_real
def test_dsb_centres_each_protein_background_on_zero_and_keeps_the_positive_cells(tmp_path):
    rna, adt = pbmc_pair()
    summary = import_anndata(tmp_path / "dsb", "cite", inputs=rna, targets=adt, proteins="dsb", normalize=True)
    assert "targets: raw counts -> dsb without empty droplets" in summary["values"]
    assert "(--proteins dsb)" in json.loads((tmp_path / "dsb" / "truth" / "truth.json").read_text())["values"]
    values = imported_targets(tmp_path / "dsb")
    # fitted on all cells at once, train and test alike
    expected = dsb(adt.X)[adt.obs_names.get_indexer(values.index)]
    np.testing.assert_allclose(values.to_numpy(), expected, rtol=1e-5, atol=1e-5)
    backgrounds = np.array([background_mean(values[name].to_numpy()) for name in values.columns])
    assert np.abs(backgrounds).max() < 0.5, dict(zip(values.columns, backgrounds.round(2)))
    for marker, share in (("CD3", (0.3, 0.7)), ("CD4", (0.3, 0.9)), ("CD19", (0.02, 0.2))):
        mean, weight = upper_mode(values[marker].to_numpy())
        assert mean > 3 and share[0] < weight < share[1], (marker, mean, weight)
    import_anndata(tmp_path / "again", "cite", inputs=rna, targets=adt, proteins="dsb")
    pd.testing.assert_frame_equal(imported_targets(tmp_path / "again"), values)
    import_anndata(tmp_path / "clr", "cite", inputs=rna, targets=adt)
    clr = imported_targets(tmp_path / "clr").loc[values.index]
    assert np.abs(clr.to_numpy() - values.to_numpy()).mean() > 0.3


@pytest.mark.realdata
@needs_real
def test_dsb_fits_separate_test_files_with_the_training_cells_whatever_their_column_order(tmp_path):
    test_adt = source(CITE_FILES["test_targets"])
    shuffled = test_adt[:, test_adt.var_names[::-1]].copy()
    files = {**CITE_FILES, "test_targets": shuffled}
    import_anndata(tmp_path / "bmmc", "cite", **files, layer="counts", proteins="dsb")
    train_adt = source(CITE_FILES["targets"])
    counts = np.concatenate([dense(train_adt.layers["counts"]), dense(test_adt.layers["counts"])])
    expected = pd.DataFrame(dsb(counts), index=[*train_adt.obs_names, *test_adt.obs_names], columns=train_adt.var_names)
    values = imported_targets(tmp_path / "bmmc")
    np.testing.assert_allclose(values.to_numpy(), expected.loc[values.index, values.columns], rtol=1e-5, atol=1e-5)
    mean, weight = upper_mode(values["CD3"].to_numpy())
    assert abs(background_mean(values["CD3"].to_numpy())) < 0.5 and mean > 3 and 0.1 < weight < 0.6


@pytest.mark.realdata
@needs_real
def test_binary_atac_is_zero_or_one_exactly_where_the_counts_are(tmp_path):
    import mudata

    summary = import_anndata(tmp_path / "muon", "multi", mudata=MUON, atac="binary")
    assert "inputs: raw counts -> binarised, peaks > 0 -> 1" in summary["values"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atac = mudata.read_h5mu(MUON).mod["atac"]
    cells = pd.Index(np.asarray(atac.obs_names, dtype=str))
    counts = dense(atac.X)
    assert counts.max() > 1
    for path in ("train_multi_inputs.h5", "test_multi_inputs.h5"):
        values = pd.read_hdf(tmp_path / "muon" / path)
        assert set(np.unique(values.to_numpy())) <= {0.0, 1.0}
        np.testing.assert_array_equal(values.to_numpy() != 0, counts[cells.get_indexer(values.index)] != 0)


@pytest.mark.realdata
@needs_real
def test_normalize_flag_is_counts_normalise_and_contradicting_keep_is_refused(tmp_path):
    via_api = import_anndata(tmp_path / "api", "cite", **CITE_FILES, layer="counts", counts="normalise")
    files = [f"--{key.replace('_', '-')}={path}" for key, path in CITE_FILES.items()]
    done = run_cli(
        "import-anndata", "--task", "cite", "--out", tmp_path / "cli", *files, "--layer", "counts", "--normalize"
    )
    assert done.returncode == 0, done.stderr
    assert via_api["values"] in done.stdout.replace("\n", "")
    for name in ("train_cite_inputs.h5", "train_cite_targets.h5", "truth/test_cite_targets.h5"):
        pd.testing.assert_frame_equal(pd.read_hdf(tmp_path / "cli" / name), pd.read_hdf(tmp_path / "api" / name))
    refused = run_cli(
        "import-anndata", "--task", "cite", "--out", tmp_path / "no", *files, "--normalize", "--counts", "keep"
    )
    assert refused.returncode == 2 and not (tmp_path / "no").exists()
    assert refused.stderr.strip().count("\n") == 0 and "--normalize" in refused.stderr and "keep" in refused.stderr
    with pytest.raises(InputError, match="contradicts --counts keep"):
        import_anndata(tmp_path / "no", "cite", **CITE_FILES, normalize=True, counts="keep")
    with pytest.raises(InputError, match="'dsc' is not one of clr, dsb"):
        import_anndata(tmp_path / "no", "cite", **CITE_FILES, proteins="dsc")
    with pytest.raises(InputError, match="'tf-idf' is not one of tfidf, binary"):
        import_anndata(tmp_path / "no", "cite", **CITE_FILES, atac="tf-idf")


@pytest.mark.realdata
@needs_real
def test_keeping_raw_counts_warns_in_one_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mmscel"):
        kept = import_anndata(tmp_path / "api", "cite", **CITE_FILES, layer="counts", counts="keep")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "the inputs and targets hold raw counts, imported unprocessed (--counts keep); "
        "--normalize or --counts normalise processes them"
    ]
    assert kept["values"].endswith("hold raw counts (--normalize or --counts normalise processes them)")
    files = [f"--{key.replace('_', '-')}={path}" for key, path in CITE_FILES.items()]
    done = run_cli(
        "import-anndata", "--task", "cite", "--out", tmp_path / "cli", *files, "--layer", "counts", "--counts", "keep"
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(lines) == 1 and warned[0] in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmscel"):
        import_anndata(tmp_path / "values", "cite", **CITE_FILES, counts="keep")
    assert not caplog.records  # normalised values kept: nothing to warn about


def test_dsb_does_not_depend_on_the_order_of_cells_and_survives_a_protein_without_counts():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, (90, 30)).astype(np.float32)
    kind = np.repeat(np.arange(3), 30)
    for k in range(3):  # three cell types, each positive for five proteins of its own
        counts[kind == k, 5 * k : 5 * k + 5] += rng.poisson(200.0, (30, 5))
    counts[:, -1] = 0
    values = dsb(counts)
    assert values.dtype == np.float32 and np.isfinite(values).all() and not values[:, -1].any()
    for k in range(3):
        positive = values[kind == k, 5 * k : 5 * k + 5]
        negative = values[kind != k, 5 * k : 5 * k + 5]
        assert positive.min() > negative.max() + 1 and abs(np.median(negative)) < 1
    order = rng.permutation(90)
    np.testing.assert_allclose(dsb(counts[order]), values[order], rtol=1e-5, atol=1e-5)
