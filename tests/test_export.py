"""``mmscel export``: runs and blends as AnnData, read back with ``anndata.read_h5ad``."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import mmscel
from conftest import run_cli
from mmscel.blend.submit import blend_predictions
from mmscel.data.cache import prepare
from mmscel.errors import InputError
from mmscel.h5ad_export import Predictions, run_predictions, write_h5ad
from mmscel.metrics import mean_pearson
from mmscel.store import RunStore
from mmscel.targets import NativeTargets

FEATURES = {"cite": {"svd_components": 16}, "multi": {"svd_components": 16, "target_svd_components": 8}}


@pytest.fixture(scope="module")
def store(tiny_prepared, tmp_path_factory) -> Path:
    """Ridge runs of both tasks (two alphas each) and a greedy blend of them."""
    folder = tmp_path_factory.mktemp("export")
    oof = folder / "oof"
    for task in ("cite", "multi"):
        for alpha in (1.0, 100.0):
            config = {"name": f"{task}_a{int(alpha)}", "task": task, "learner": "ridge", "params": {"alpha": alpha}}
            config.update(features=FEATURES[task], n_jobs=1)
            mmscel.run_level1(config, tiny_prepared, oof_root=oof)
    mmscel.run_level2({"name": "duo", "method": "greedy", "nested_trials": 3}, tiny_prepared, oof_root=oof)
    return oof


def read(path) -> anndata.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is plain AnnData: no warning on reading it
        return anndata.read_h5ad(path)


def test_a_run_round_trips_through_read_h5ad(tiny_prepared, store, tmp_path):
    out = tmp_path / "cite.h5ad"
    [record] = mmscel.export(out, run="cite/cite_a1", data_dir=tiny_prepared, oof_root=store)
    adata = read(out)
    expected = mmscel.load_oof("cite", "cite_a1", store, tiny_prepared, split="test", as_anndata=True)
    assert record == {"file": str(out), "task": "cite", "split": "test", "shape": [*expected.shape], "run": "cite_a1"}
    np.testing.assert_array_equal(adata.X, expected.X)
    assert adata.X.dtype == np.float32 and list(adata.obs_names) == list(expected.obs_names)
    assert list(adata.var_names) == list(expected.var_names) and adata.n_vars == 140
    assert list(adata.obs.columns) == ["day", "donor", "cell_type", "technology"]
    assert adata.obs["day"].dtype == np.int64 and isinstance(adata.obs["cell_type"].dtype, pd.CategoricalDtype)
    about = adata.uns["mmscel"]
    assert about["kind"] == "run" and about["name"] == "cite_a1" and about["learner"] == "ridge"
    assert about["cv"] == RunStore(store).run("cite", "cite_a1").cv and list(about["runs"]) == ["cite_a1"]


def test_multiome_out_of_fold_genes_are_reconstructed_in_row_chunks(tiny_prepared, store, tmp_path):
    [record] = mmscel.export(run="multi/multi_a100", split="oof", data_dir=tiny_prepared, oof_root=store)
    path = Path(record["file"])
    assert path == store / "exports" / "multi" / "multi_a100.oof.h5ad"
    adata = read(path)
    genes = mmscel.load_oof("multi", "multi_a100", store, tiny_prepared)
    np.testing.assert_allclose(adata.X, genes.to_numpy(), rtol=1e-5, atol=1e-5)
    assert list(adata.var_names) == list(genes.columns) and list(adata.obs_names) == list(genes.index)
    folds = pd.read_parquet(store / "folds" / "multi_auto.parquet")
    np.testing.assert_array_equal(adata.obs["fold"].to_numpy(), folds["fold"].to_numpy())
    assert adata.obs["predicted"].all() and adata.obs["donor"].nunique() == 3
    predictions = run_predictions(RunStore(store), "multi/multi_a100", "oof", tiny_prepared)
    small = tmp_path / "chunks.h5ad"
    write_h5ad(small, predictions, tiny_prepared, None, RunStore(store), chunk_rows=7)
    np.testing.assert_array_equal(read(small).X, adata.X)  # 7 rows at a time: the same file content


def test_a_blend_is_exported_as_submit_computes_it(tiny_prepared, store):
    records = mmscel.export(blend="duo", data_dir=tiny_prepared, oof_root=store)
    assert [r["task"] for r in records] == ["cite", "multi"]
    predictions, _ = blend_predictions(RunStore(store), "duo", tiny_prepared)
    for record in records:
        adata = read(record["file"])
        test, components, correction = predictions[record["task"]]
        assert correction is None  # a blend without a cis correction
        expected = test if components is None else test @ components
        np.testing.assert_allclose(adata.X, expected, rtol=1e-5, atol=1e-5)
        about = adata.uns["mmscel"]
        assert about["kind"] == "blend" and about["method"] == "greedy" and len(about["weights"]) == 2
        assert Path(record["file"]).name == f"duo.{record['task']}.test.h5ad"


def test_a_blends_out_of_fold_predictions_score_its_in_sample_score(tiny_prepared, store, tmp_path):
    out = tmp_path / "duo_cite.h5ad"
    mmscel.export(out, blend="duo", task="cite", split="oof", data_dir=tiny_prepared, oof_root=store)
    adata = read(out)
    truth = mmscel.load("cite", "train", tiny_prepared).targets
    in_sample = RunStore(store).blend("duo").tasks["cite"].in_sample
    assert mean_pearson(truth, adata.X) == pytest.approx(in_sample, abs=1e-5)


def test_the_command_line_writes_one_file_and_refuses_bad_input_in_one_line(tiny_prepared, store, tmp_path):
    out = tmp_path / "by_cli.h5ad"
    common = ("--data", tiny_prepared, "--oof", store)
    done = run_cli("export", "--run", "cite/cite_a100", "--out", out, *common)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and read(out).n_vars == 140
    for arguments, message in {
        ("--run", "cite/../x"): "is not a plain name",
        ("--blend", "duo", "--out", tmp_path / "two.h5ad"): "pass --task",
    }.items():
        result = run_cli("export", *arguments, *common)
        assert result.returncode == 2 and message in result.stderr, (arguments, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["by_cli.h5ad"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run": "cite_a100"}, "expected TASK/RUN"),
        ({"run": "cite/nope"}, "not a finished level-1 run"),
        ({"blend": "nope"}, "no such blend"),
        ({"blend": "duo", "task": "nope"}, "has no nope task"),
        ({"run": "cite/cite_a1", "out": "x.csv"}, "must be an .h5ad file"),
        ({"run": "cite/cite_a1", "out": "."}, "must be an .h5ad file"),
        ({"run": "cite/cite_a1", "split": "train"}, "'train' is not one of"),
        ({"run": "cite/cite_a1", "blend": "duo"}, "not both"),
        ({}, "neither"),
    ],
)
def test_bad_requests_are_one_line_errors(tiny_prepared, store, tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    out = options.pop("out", None)
    with pytest.raises(InputError, match=message) as error:
        mmscel.export(out, data_dir=tiny_prepared, oof_root=store, **options)
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_predictions_of_other_data_are_refused_and_nothing_is_written(tiny_prepared, store, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_prepared, other)
    metadata = pd.read_csv(other / "metadata.csv")
    metadata.loc[0, "cell_type"] = "changed"
    metadata.to_csv(other / "metadata.csv", index=False)
    prepare(other)
    with pytest.raises(InputError, match="other data"):
        mmscel.export(tmp_path / "x.h5ad", run="cite/cite_a1", data_dir=other, oof_root=store)
    records = RunStore(store).run("cite", "cite_a1")
    space = NativeTargets()
    wrong = Predictions("cite", "test", records.test()[:-1], space, {"kind": "run", "name": "cite_a1", "runs": []})
    with pytest.raises(InputError, match="test rows for"):
        write_h5ad(tmp_path / "y.h5ad", wrong, tiny_prepared, None, RunStore(store))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_export_is_part_of_the_public_api():
    assert "export" in mmscel.__all__ and mmscel.export.__module__ == "mmscel.h5ad_export"


def test_predictions_come_back_as_anndata_in_memory_as_export_writes_them(tiny_prepared, store, tmp_path):
    where = {"data_dir": tiny_prepared, "oof_root": store}
    [record] = mmscel.export(tmp_path / "run.h5ad", run="multi/multi_a1", split="oof", **where)
    in_memory = mmscel.predictions(run="multi/multi_a1", split="oof", **where)
    written = read(record["file"])
    np.testing.assert_array_equal(in_memory.X, written.X)
    pd.testing.assert_frame_equal(in_memory.obs, written.obs)
    assert list(in_memory.var_names) == list(written.var_names) and in_memory.uns["mmscel"]["name"] == "multi_a1"
    blend = mmscel.predictions(blend="duo", task="cite", **where)
    [exported] = mmscel.export(tmp_path / "duo.h5ad", blend="duo", task="cite", **where)
    np.testing.assert_array_equal(blend.X, read(exported["file"]).X)
    assert blend.uns["mmscel"]["kind"] == "blend" and blend.n_vars == 140
    with pytest.raises(InputError, match=r"^blend duo: blends cite and multi; pass task="):
        mmscel.predictions(blend="duo", **where)
    with pytest.raises(InputError, match="neither"):
        mmscel.predictions(**where)
