"""Tests of ``mmscel.data.anndata_import``: real starter files and bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from mmscel.data.anndata_import import import_anndata, peak_name
from mmscel.data.h5io import FrameReader
from mmscel.errors import InputError
from mmscel.metrics import mean_pearson

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-data"
CITE_DIR = REAL / "bmmc_cite_starter"
CITE_FILES = {  # the BMMC starter: train donor s1d1, test donor s1d2
    "inputs": CITE_DIR / "train_mod1.h5ad",
    "targets": CITE_DIR / "train_mod2.h5ad",
    "test_inputs": CITE_DIR / "test_mod1.h5ad",
    "test_targets": CITE_DIR / "test_mod2.h5ad",
}
MULTI_DIR = REAL / "bmmc_multiome_starter"
MUON = REAL / "pbmc_multiome_muon" / "pbmc_rna_atac.h5mu"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent")

CORE_FILES = {"metadata.csv", "evaluation_ids.csv", "sample_submission.csv"}
TRUTH_FILES = {"solution.parquet", "truth.json"}


def _read_x(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = anndata.read_h5ad(path)
    x = adata.X
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float32)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- BMMC CITE starter


@pytest.fixture(scope="module")
def cite_import(tmp_path_factory):
    out = tmp_path_factory.mktemp("cite") / "data"
    summary = import_anndata(
        out,
        "cite",
        **CITE_FILES,
    )
    return out, summary


@pytest.mark.realdata
@needs_real
def test_cite_files_and_shapes(cite_import):
    out, summary = cite_import
    stems = {"train_cite_inputs.h5", "train_cite_targets.h5", "test_cite_inputs.h5"}
    truth = {f"truth/{name}" for name in TRUTH_FILES | {"test_cite_targets.h5"}}
    assert _files(out) == CORE_FILES | stems | truth
    assert _leftovers(out.parent) == []
    assert summary["shapes"] == {
        "cite": {"train_inputs": [311, 1000], "train_targets": [311, 134], "test_inputs": [289, 1000]}
    }
    truth_json = json.loads((out / "truth" / "truth.json").read_text())
    assert truth_json["generator"] == "mmscel import-anndata"
    assert truth_json["oracle"] is None and truth_json["task"] == "cite"
    assert truth_json["n_test_cells"] == {"public": 0, "private": 289}
    assert truth_json["evaluation_rows"] == 289 * 134
    assert truth_json["split"]["method"] == "files"
    meta = pd.read_csv(out / "metadata.csv")
    assert list(meta.columns) == ["cell_id", "day", "donor", "cell_type", "technology"]
    assert len(meta) == 600 and set(meta.technology) == {"citeseq"}
    assert meta.groupby("donor").size().to_dict() == {"s1d1": 311, "s1d2": 289}
    assert set(meta.cell_type[meta.donor == "s1d2"]) == {"hidden"}


@pytest.mark.realdata
@needs_real
def test_cite_values_equal_source(cite_import):
    out, _ = cite_import
    train_in = pd.read_hdf(out / "train_cite_inputs.h5")
    assert train_in.shape == (311, 1000)
    assert train_in.index.name == "cell_id" and train_in.columns.name == "gene_id"
    assert all(c.startswith("ENSG") and "_" in c for c in train_in.columns)
    assert "ENSG00000237491_LINC01409" in train_in.columns
    assert train_in.dtypes.unique().tolist() == [np.float32]
    np.testing.assert_array_equal(train_in.to_numpy(), _read_x(CITE_DIR / "train_mod1.h5ad"))
    with FrameReader(out / "train_cite_targets.h5") as reader:
        assert reader.shape == (311, 134)
        assert reader.columns[0] == "CD86"
        np.testing.assert_array_equal(reader.read_rows(0, 311), _read_x(CITE_DIR / "train_mod2.h5ad"))
    with FrameReader(out / "test_cite_inputs.h5") as reader:
        np.testing.assert_array_equal(reader.read_rows(0, 289), _read_x(CITE_DIR / "test_mod1.h5ad"))
    truth = pd.read_hdf(out / "truth" / "test_cite_targets.h5")
    np.testing.assert_array_equal(truth.to_numpy(), _read_x(CITE_DIR / "test_mod2.h5ad"))


@pytest.mark.realdata
@needs_real
def test_cite_evaluation_and_solution(cite_import):
    out, _ = cite_import
    ids = pd.read_csv(out / "evaluation_ids.csv")
    sub = pd.read_csv(out / "sample_submission.csv")
    solution = pd.read_parquet(out / "truth" / "solution.parquet")
    truth = pd.read_hdf(out / "truth" / "test_cite_targets.h5")
    assert len(ids) == len(sub) == len(solution) == 289 * 134
    assert (ids.row_id.to_numpy() == np.arange(len(ids))).all()
    assert (solution.row_id.to_numpy() == ids.row_id.to_numpy()).all()
    assert (ids.cell_id.to_numpy() == np.repeat(truth.index.to_numpy(), 134)).all()
    assert (ids.gene_id.to_numpy() == np.tile(truth.columns.to_numpy(), 289)).all()
    np.testing.assert_array_equal(solution.target.to_numpy(), truth.to_numpy().ravel())
    assert set(solution.split) == {"private"} and set(solution.task) == {"cite"}
    assert solution.cell.nunique() == 289


@pytest.mark.realdata
@needs_real
def test_cite_import_has_signal(cite_import):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import Ridge

    out, _ = cite_import
    x_train = pd.read_hdf(out / "train_cite_inputs.h5").to_numpy()
    y_train = pd.read_hdf(out / "train_cite_targets.h5").to_numpy()
    x_test = pd.read_hdf(out / "test_cite_inputs.h5").to_numpy()
    y_test = pd.read_hdf(out / "truth" / "test_cite_targets.h5").to_numpy()
    svd = TruncatedSVD(32, random_state=0).fit(x_train)
    model = Ridge(alpha=1.0).fit(svd.transform(x_train), y_train)
    score = mean_pearson(y_test, model.predict(svd.transform(x_test)))
    baseline = mean_pearson(y_test, np.tile(y_train.mean(axis=0), (len(y_test), 1)))
    assert score > 0.75
    assert score > baseline + 0.1


@pytest.mark.realdata
@needs_real
def test_leaderboard_of_a_cite_only_import_skips_runs_of_other_tasks(cite_import, tiny_prepared, tmp_path):
    import yaml

    from conftest import run_cli
    from mmscel.data.cache import prepare
    from mmscel.data.cache_check import dataset_tasks
    from mmscel.level1 import run_level1

    out, _ = cite_import
    prepare(out)
    assert dataset_tasks(out) == ["cite"] and dataset_tasks(tiny_prepared) == ["cite", "multi"]
    oof = tmp_path / "oof"  # one store holding a run on the import and a Multiome run on other data
    for name, task, data in (("bmmc_ridge", "cite", out), ("tiny_multi_ridge", "multi", tiny_prepared)):
        config = {
            "name": name,
            "task": task,
            "learner": "ridge",
            "params": {"alpha": 10.0},
            "features": {"svd_components": 16},
            "folds": {"scheme": "random"},
            "n_jobs": 1,
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        run_level1(tmp_path / f"{name}.yaml", data, oof_root=oof)
    board = run_cli("leaderboard", "--data", out, "--oof", oof)
    assert board.returncode == 0, board.stderr
    assert "bmmc_ridge" in board.stdout and "tiny_multi_ridge" not in board.stdout and "multi:" not in board.stdout


@pytest.mark.realdata
@needs_real
def test_cite_raw_counts(tmp_path):
    out = tmp_path / "raw"
    summary = import_anndata(
        out,
        "cite",
        **CITE_FILES,
        raw=True,
    )
    assert sorted(summary["raw_files"]) == [
        "test_cite_inputs_raw.h5",
        "train_cite_inputs_raw.h5",
        "train_cite_targets_raw.h5",
    ]
    counts = pd.read_hdf(out / "train_cite_inputs_raw.h5")
    assert counts.shape == (311, 1000)
    assert np.allclose(counts.to_numpy(), np.round(counts.to_numpy())) and counts.to_numpy().max() > 1


# --------------------------------------------------------------------------- muon multiome MuData


def _muon(out: Path, seed: int = 0) -> dict:
    return import_anndata(out, "multi", mudata=MUON, test_fraction=0.3, seed=seed)


@pytest.mark.realdata
@needs_real
def test_muon_multiome(tmp_path):
    out = tmp_path / "muon"
    summary = _muon(out)
    assert summary["shapes"] == {
        "multi": {"train_inputs": [700, 174], "train_targets": [700, 45], "test_inputs": [300, 174]}
    }
    assert summary["sources"]["input_mod"] == "atac" and summary["sources"]["target_mod"] == "rna"
    train_in = pd.read_hdf(out / "train_multi_inputs.h5")
    test_in = pd.read_hdf(out / "test_multi_inputs.h5")
    for name in train_in.columns:
        chrom, _, span = name.partition(":")
        assert span and "-" not in chrom and span.count("-") == 1
    assert list(test_in.columns) == list(train_in.columns)
    targets = pd.read_hdf(out / "train_multi_targets.h5")
    assert all(c.startswith("ENSG") for c in targets.columns)
    assert not set(train_in.index) & set(test_in.index)
    ids = pd.read_csv(out / "evaluation_ids.csv")
    assert len(ids) == summary["evaluation_rows"] == 300 * 45
    solution = pd.read_parquet(out / "truth" / "solution.parquet")
    truth = pd.read_hdf(out / "truth" / "test_multi_targets.h5")
    np.testing.assert_array_equal(solution.target.to_numpy(), truth.to_numpy().ravel())
    assert set(solution.task) == {"multi"}


@pytest.mark.realdata
@needs_real
def test_muon_split_is_deterministic(tmp_path):
    _muon(tmp_path / "a", seed=0)
    _muon(tmp_path / "b", seed=0)
    _muon(tmp_path / "c", seed=1)
    for name in ("metadata.csv", "evaluation_ids.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    test_a = pd.read_hdf(tmp_path / "a" / "test_multi_inputs.h5")
    test_b = pd.read_hdf(tmp_path / "b" / "test_multi_inputs.h5")
    test_c = pd.read_hdf(tmp_path / "c" / "test_multi_inputs.h5")
    pd.testing.assert_frame_equal(test_a, test_b)
    assert set(test_a.index) != set(test_c.index)


@pytest.mark.realdata
@needs_real
def test_muon_partial_scoring(tmp_path):
    out = tmp_path / "scored"
    summary = import_anndata(out, "multi", mudata=MUON, seed=3, multi_cell_fraction=0.5, multi_gene_fraction=0.2)
    assert summary["evaluation_rows"] == 150 * 9
    ids = pd.read_csv(out / "evaluation_ids.csv")
    solution = pd.read_parquet(out / "truth" / "solution.parquet")
    truth = pd.read_hdf(out / "truth" / "test_multi_targets.h5")
    assert ids.cell_id.nunique() == 150 and ids.groupby("cell_id").size().eq(9).all()
    expected = truth.to_numpy()[truth.index.get_indexer(ids.cell_id), truth.columns.get_indexer(ids.gene_id)]
    np.testing.assert_array_equal(solution.target.to_numpy(), expected)


# --------------------------------------------------------------------------- BMMC multiome starter


@pytest.mark.realdata
@needs_real
def test_bmmc_multiome_starter(tmp_path):
    out = tmp_path / "multi"
    summary = import_anndata(
        out,
        "multi",
        inputs=MULTI_DIR / "train_mod2.h5ad",
        targets=MULTI_DIR / "train_mod1.h5ad",
        test_inputs=MULTI_DIR / "test_mod2.h5ad",
        test_targets=MULTI_DIR / "test_mod1.h5ad",
    )
    assert summary["shapes"] == {
        "multi": {"train_inputs": [221, 600], "train_targets": [221, 600], "test_inputs": [279, 600]}
    }
    train_in = pd.read_hdf(out / "train_multi_inputs.h5")
    assert train_in.columns[0] == "chr1:1677585-1678477"
    np.testing.assert_array_equal(train_in.to_numpy(), _read_x(MULTI_DIR / "train_mod2.h5ad"))
    targets = pd.read_hdf(out / "train_multi_targets.h5")
    assert targets.columns[0] == "ENSG00000116151"
    np.testing.assert_array_equal(targets.to_numpy(), _read_x(MULTI_DIR / "train_mod1.h5ad"))
    truth = pd.read_hdf(out / "truth" / "test_multi_targets.h5")
    np.testing.assert_array_equal(truth.to_numpy(), _read_x(MULTI_DIR / "test_mod1.h5ad"))
    assert summary["evaluation_rows"] == 279 * 600
    meta = pd.read_csv(out / "metadata.csv")
    assert len(meta) == 500 and set(meta.technology) == {"multiome"}


def test_peak_name():
    assert peak_name("chr1-1677585-1678477") == "chr1:1677585-1678477"
    assert peak_name("chr1:100-200") == "chr1:100-200"


# --------------------------------------------------------------------------- small synthetic files


def _adata(cells, names, rng, var=None, batch="d1", counts=True) -> anndata.AnnData:
    x = rng.poisson(1.0, (len(cells), len(names))).astype(np.float32)
    adata = anndata.AnnData(
        X=sparse.csr_matrix(np.log1p(x)),
        obs=pd.DataFrame({"batch": batch}, index=pd.Index(cells)),
        var=var if var is not None else pd.DataFrame(index=pd.Index(names)),
    )
    if counts:
        adata.layers["counts"] = sparse.csr_matrix(x)
    return adata


@pytest.fixture()
def small(tmp_path):
    """Tiny paired CITE-like .h5ad files: train (donors d1, d2) and a test file."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(8)]
    var = pd.DataFrame({"gene_ids": [f"ENSG{i:011d}" for i in range(8)]}, index=pd.Index(genes))
    cells = [f"c{i}" for i in range(20)]
    batch = ["d1"] * 12 + ["d2"] * 8
    paths = {}
    for name, adata in {
        "rna": _adata(cells, genes, rng, var=var, batch=batch),
        "adt": _adata(cells, ["P0", "P1", "P2"], rng, batch=batch),
        "test_rna": _adata([f"t{i}" for i in range(6)], genes, rng, var=var, batch="d3"),
        "test_adt": _adata([f"t{i}" for i in range(6)], ["P0", "P1", "P2"], rng, batch="d3"),
    }.items():
        paths[name] = tmp_path / f"{name}.h5ad"
        adata.write_h5ad(paths[name])
    return paths


def _expect_error(out: Path, needle: str, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        import_anndata(out, kwargs.pop("task", "cite"), **kwargs)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists()
    assert _leftovers(out.parent) == []
    return info.value


def test_split_by_column(small, tmp_path):
    out = tmp_path / "out"
    summary = import_anndata(
        out, "cite", inputs=small["rna"], targets=small["adt"], split_by="batch", test_values=["d2"]
    )
    assert summary["train_cells"] == 12 and summary["test_cells"] == 8
    meta = pd.read_csv(out / "metadata.csv")
    assert meta.groupby("donor").size().to_dict() == {"d1": 12, "d2": 8}
    assert pd.read_hdf(out / "test_cite_inputs.h5").columns[0] == "ENSG00000000000_G0"


def test_test_columns_are_aligned_by_name(small, tmp_path):
    adata = anndata.read_h5ad(small["test_rna"])
    reordered = tmp_path / "reordered.h5ad"
    adata[:, adata.var_names[::-1]].copy().write_h5ad(reordered)
    out = tmp_path / "out"
    import_anndata(
        out, "cite", inputs=small["rna"], targets=small["adt"], test_inputs=reordered, test_targets=small["test_adt"]
    )
    test = pd.read_hdf(out / "test_cite_inputs.h5")
    train = pd.read_hdf(out / "train_cite_inputs.h5")
    assert list(test.columns) == list(train.columns)
    np.testing.assert_array_equal(test.to_numpy(), _read_x(small["test_rna"]))


def test_layer_and_overwrite(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    kwargs = dict(
        inputs=small["rna"], targets=small["adt"], split_by="batch", test_values=["d2"], layer="counts", counts="keep"
    )
    with pytest.raises(InputError, match="not empty"):
        import_anndata(out, "cite", **kwargs)
    import_anndata(out, "cite", overwrite=True, **kwargs)
    assert not (out / "old.txt").exists()
    counts = pd.read_hdf(out / "train_cite_inputs.h5").to_numpy()
    assert np.allclose(counts, np.round(counts))
    assert _leftovers(tmp_path) == []


def test_missing_file(tmp_path, small):
    missing = tmp_path / "nope.h5ad"
    _expect_error(tmp_path / "out", str(missing), inputs=missing, targets=small["adt"])


def test_corrupt_h5ad(tmp_path, small):
    corrupt = tmp_path / "corrupt.h5ad"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    _expect_error(tmp_path / "out", str(corrupt), inputs=corrupt, targets=small["adt"])


def test_missing_modality(tmp_path):
    import mudata

    rng = np.random.default_rng(1)
    cells = [f"c{i}" for i in range(10)]
    path = tmp_path / "small.h5mu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mudata.MuData({"rna": _adata(cells, ["A", "B"], rng), "atac": _adata(cells, ["chr1-1-5"], rng)}).write(path)
    error = _expect_error(tmp_path / "out", str(path), mudata=path)
    assert "'prot' or 'adt'" in str(error) and "rna" in str(error) and "atac" in str(error)
    _expect_error(tmp_path / "out", "'protein'", mudata=path, target_mod="protein")


def test_bad_split_column(tmp_path, small):
    error = _expect_error(
        tmp_path / "out",
        "'no_such_column'",
        inputs=small["rna"],
        targets=small["adt"],
        split_by="no_such_column",
        test_values=["x"],
    )
    assert str(small["rna"]) in str(error) and "batch" in str(error)


def test_split_without_test_cells(tmp_path, small):
    _expect_error(
        tmp_path / "out",
        "no test cells",
        inputs=small["rna"],
        targets=small["adt"],
        split_by="batch",
        test_values=["d9"],
    )
    _expect_error(
        tmp_path / "out",
        "no training cells",
        inputs=small["rna"],
        targets=small["adt"],
        split_by="batch",
        test_values=["d1", "d2"],
    )


def test_missing_layer(tmp_path, small):
    _expect_error(tmp_path / "out", "'spliced'", inputs=small["rna"], targets=small["adt"], layer="spliced")


def test_different_features_refused(tmp_path, small):
    adata = anndata.read_h5ad(small["test_rna"])
    fewer = tmp_path / "fewer.h5ad"
    adata[:, adata.var_names[:-1]].copy().write_h5ad(fewer)
    _expect_error(
        tmp_path / "out",
        str(fewer),
        inputs=small["rna"],
        targets=small["adt"],
        test_inputs=fewer,
        test_targets=small["test_adt"],
    )


def test_different_cells_refused(tmp_path, small):
    error = _expect_error(
        tmp_path / "out", str(small["test_adt"]), inputs=small["rna"], targets=small["test_adt"], test_fraction=0.5
    )
    assert "different cells" in str(error)


# --------------------------------------------------------------------------- targets kept in the inputs' obsm


def _targets_h5(out: Path) -> tuple[list[str], np.ndarray]:
    with FrameReader(out / "train_cite_targets.h5") as reader:
        return [str(c) for c in reader.columns], reader.read_rows(0, reader.shape[0])


def _with_obsm(inputs: Path, targets: Path, path: Path, as_frame: bool) -> Path:
    """``inputs`` with the counts of ``targets`` in ``obsm['protein_expression']`` (scvi-tools' layout)."""
    rna, adt = anndata.read_h5ad(inputs), anndata.read_h5ad(targets)
    counts = adt.layers["counts"].toarray()
    if as_frame:
        rna.obsm["protein_expression"] = pd.DataFrame(counts, index=rna.obs_names, columns=adt.var_names)
    else:
        rna.obsm["protein_expression"] = counts
        rna.uns["protein_names"] = np.asarray(adt.var_names)
    rna.write_h5ad(path)
    return path


@pytest.mark.parametrize("as_frame", [True, False], ids=["dataframe", "array_and_uns_names"])
def test_targets_from_obsm_equal_a_separate_targets_file(small, tmp_path, as_frame):
    rna = _with_obsm(small["rna"], small["adt"], tmp_path / "rna_obsm.h5ad", as_frame)
    test_rna = _with_obsm(small["test_rna"], small["test_adt"], tmp_path / "test_rna_obsm.h5ad", as_frame)
    paired, from_obsm = tmp_path / "paired", tmp_path / "obsm"
    import_anndata(paired, "cite", inputs=small["rna"], targets=small["adt"], layer="counts")
    summary = import_anndata(from_obsm, "cite", inputs=rna, targets_obsm="protein_expression", layer="counts")
    assert summary["sources"]["targets"] == f"{rna}:obsm[protein_expression]"
    assert _targets_h5(from_obsm)[0] == ["P0", "P1", "P2"]
    np.testing.assert_array_equal(_targets_h5(from_obsm)[1], _targets_h5(paired)[1])
    with_test = tmp_path / "with_test"
    summary = import_anndata(
        with_test, "cite", inputs=rna, test_inputs=test_rna, targets_obsm="protein_expression", layer="counts"
    )
    assert (summary["train_cells"], summary["test_cells"]) == (20, 6)
    assert summary["sources"]["test_targets"] == f"{test_rna}:obsm[protein_expression]"


def test_targets_obsm_errors(small, tmp_path):
    out = tmp_path / "out"
    _expect_error(out, "no obsm 'proteins'", inputs=small["rna"], targets_obsm="proteins")
    _expect_error(out, "not targets", inputs=small["rna"], targets=small["adt"], targets_obsm="proteins")
    nameless = anndata.read_h5ad(small["rna"])
    nameless.obsm["protein_expression"] = np.ones((nameless.n_obs, 3), dtype=np.float32)
    _expect_error(out, "uns['protein_names'] names 0", inputs=nameless, targets_obsm="protein_expression")


@needs_real
def test_cli_imports_scvi_proteins_from_obsm(tmp_path):
    from conftest import run_cli

    source = REAL / "pbmc_citeseq_10x" / "pbmc_5k_protein_v3.h5ad"
    out = tmp_path / "pbmc5k"
    args = ["import-anndata", "--task", "cite", "--inputs", source, "--targets-obsm", "protein_expression"]
    result = run_cli(*args, "--out", out)
    assert result.returncode == 0, result.stderr
    names, values = _targets_h5(out)
    assert len(names) == 29 and values.shape == (140, 29)  # 70 % of 200 cells train
    missing = run_cli(*args[:-1], "no_such_key", "--out", tmp_path / "other")
    assert missing.returncode == 2 and "no obsm 'no_such_key'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
