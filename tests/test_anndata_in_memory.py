"""AnnData and MuData objects in memory: imported like their files, and predictions given back as AnnData."""

from __future__ import annotations

import json
import warnings

import anndata
import numpy as np
import pandas as pd
import pytest

import mmscel
from mmscel.errors import InputError
from test_import_anndata import _adata, small  # noqa: F401  (small: the fixture of paired .h5ad files)


def read(path) -> anndata.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anndata.read_h5ad(path)


def same_import(first, second) -> None:
    for name in ("metadata.csv", "evaluation_ids.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(first / name), pd.read_csv(second / name))
    for name in ("train_cite_inputs.h5", "train_cite_targets.h5", "test_cite_inputs.h5"):
        pd.testing.assert_frame_equal(pd.read_hdf(first / name), pd.read_hdf(second / name))


def test_objects_import_as_their_files_do_and_are_left_unchanged(small, tmp_path):  # noqa: F811
    options = {"split_by": "batch", "test_values": ["d2"], "layer": "counts"}
    mmscel.import_anndata((small["rna"], small["adt"]), tmp_path / "files", "cite", **options)
    rna, adt = read(small["rna"]), read(small["adt"])
    before = rna.layers["counts"].toarray().copy(), rna.obs.copy(), adt.X.toarray().copy()
    summary = mmscel.import_anndata((rna, adt), tmp_path / "memory", "cite", **options)
    same_import(tmp_path / "files", tmp_path / "memory")
    assert summary["values"].startswith("values: ") and summary["train_cells"] == 12
    np.testing.assert_array_equal(rna.layers["counts"].toarray(), before[0])
    pd.testing.assert_frame_equal(rna.obs, before[1])
    np.testing.assert_array_equal(adt.X.toarray(), before[2])
    sources = json.loads((tmp_path / "memory" / "truth" / "truth.json").read_text())["sources"]
    assert sources["inputs"] == "inputs (AnnData in memory, 20 cells x 8 features)"
    assert sources["targets"] == "targets (AnnData in memory, 20 cells x 3 features)"


def test_separate_test_objects_and_a_mudata_in_memory(small, tmp_path):  # noqa: F811
    import mudata

    pair, test = (read(small["rna"]), read(small["adt"])), (read(small["test_rna"]), read(small["test_adt"]))
    summary = mmscel.import_anndata(pair, tmp_path / "pair", "cite", test=test, counts="keep")
    assert summary["train_cells"] == 20 and summary["test_cells"] == 6
    assert summary["split"]["test_inputs"] == "test_inputs (AnnData in memory, 6 cells x 8 features)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.MuData({"rna": pair[0], "prot": pair[1]})
    summary = mmscel.import_anndata(mdata, tmp_path / "mu", "cite", split_by="batch", test_values=["d2"])
    assert summary["sources"]["mudata"].startswith("mudata (MuData in memory, 20 cells")
    assert summary["sources"]["target_mod"] == "prot" and summary["test_cells"] == 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("adata", "mudata: expected an .h5mu path or a MuData, got AnnData"),
        (("adata",), "data: expected a pair (inputs, targets)"),
        (("adata", 3), "targets: expected an .h5ad path or an AnnData, got int"),
    ],
)
def test_wrong_objects_are_one_line_errors(small, tmp_path, data, message):  # noqa: F811
    adata = read(small["rna"])
    data = tuple(adata if item == "adata" else item for item in data) if isinstance(data, tuple) else adata
    with pytest.raises(InputError) as error:
        mmscel.import_anndata(data, tmp_path / "out", "cite", test_fraction=0.3)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_duplicate_names_in_an_object_name_it_by_role(tmp_path):
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata warns of the repeated name too
        rna = _adata(["c0", "c1", "c2"], ["G0", "G0"], rng)
    adt = _adata(["c0", "c1", "c2"], ["P0"], rng)
    with pytest.raises(InputError, match=r"^inputs \(AnnData in memory, 3 cells x 2 features\): duplicate feature"):
        mmscel.import_anndata((rna, adt), tmp_path / "out", "cite")


def test_targets_in_obsm_of_objects_import_as_a_pair_does(small, tmp_path):  # noqa: F811
    options = {"layer": "counts"}
    pair, test = (read(small["rna"]), read(small["adt"])), (read(small["test_rna"]), read(small["test_adt"]))
    mmscel.import_anndata(pair, tmp_path / "pair", "cite", test=test, **options)
    for rna, adt in (pair, test):
        rna.obsm["protein_expression"] = pd.DataFrame(
            adt.layers["counts"].toarray(), index=rna.obs_names, columns=adt.var_names
        )
    summary = mmscel.import_anndata(
        pair[0], tmp_path / "obsm", "cite", test=test[0], targets_obsm="protein_expression", **options
    )
    same_import(tmp_path / "pair", tmp_path / "obsm")
    assert summary["sources"]["targets"].endswith(":obsm[protein_expression]")
