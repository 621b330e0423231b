"""Raw counts in imported AnnData: detected, and processed as the competition's files are (or kept, or refused)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from mmscel.data.anndata_import import import_anndata
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
