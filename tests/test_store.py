"""The store: one owner of oof/'s layout, plain names only, never a delete outside its own folders."""

import numpy as np
import pytest
import yaml

from conftest import run_cli
from mmscel.errors import InputError
from mmscel.store import RunStore, check_name


@pytest.mark.parametrize("name", ["", "..", "../x", "/tmp/x", "a/b", ".hidden", "-x", "a..b", "x y"])
def test_names_that_are_not_plain_are_refused(name):
    with pytest.raises(InputError, match="not a plain name"):
        check_name(name)
    with pytest.raises(InputError):
        RunStore("oof").run_dir("cite", name)


@pytest.mark.parametrize("name", ["cite_ridge", "run.v2", "A-1", "7"])
def test_plain_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../outside"])
def test_a_config_with_a_bad_run_name_deletes_nothing(tiny_prepared, tmp_path, name):
    oof = tmp_path / "oof"
    keep = oof / "cite" / "cite_ridge" / "keep.npy"
    keep.parent.mkdir(parents=True)
    np.save(keep, np.zeros(3))
    (tmp_path / "outside").mkdir()
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"name": name, "task": "cite", "learner": "ridge"}))
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", oof, "--overwrite")
    assert result.returncode == 2 and "name" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert keep.exists() and (tmp_path / "outside").exists()


def test_a_blend_name_that_climbs_out_is_refused(tiny_prepared, tmp_path):
    config = tmp_path / "blend.yaml"
    config.write_text(yaml.safe_dump({"name": "../../x"}))
    result = run_cli("level2", config, "--data", tiny_prepared, "--oof", tmp_path / "oof")
    assert result.returncode == 2 and "not a plain name" in result.stderr


def test_the_store_removes_only_its_own_artifacts(tmp_path):
    store = RunStore(tmp_path / "oof")
    run = store.run_dir("cite", "r")
    run.mkdir(parents=True)
    store.remove_run("cite", "r")
    assert not run.exists()
    for outside in (tmp_path, tmp_path / "oof", tmp_path / "oof" / "cite"):
        outside.mkdir(parents=True, exist_ok=True)
        with pytest.raises(InputError, match="refusing to delete"):
            store._remove(outside)
        assert outside.exists()


def test_manifests_cannot_name_files_outside_the_store(tmp_path):
    store = RunStore(tmp_path / "oof")
    for stored in ("/etc/passwd", "../secret.npy", "features/../../x.npy"):
        with pytest.raises(InputError, match="outside the store"):
            store.resolve(stored)
    assert store.resolve("folds/cite_donor.parquet") == tmp_path / "oof" / "folds" / "cite_donor.parquet"


def test_the_layout_is_the_stores(tmp_path):
    store = RunStore(tmp_path)
    assert store.run_dir("multi", "m") == tmp_path / "multi" / "m"
    assert store.fold_file("cite", "donor") == tmp_path / "folds" / "cite_donor.parquet"
    assert store.blend_study("b", "cite", "k").parent == store.blend_dir("b") == tmp_path / "blend" / "b"
    assert store.submission_path("cite-a+multi-b").name == "cite-a+multi-b.csv.gz"
    assert store.study_dir("s") == tmp_path / "tune" / "s"
    with pytest.raises(InputError, match="unknown task"):
        store.run_dir("rna", "x")
