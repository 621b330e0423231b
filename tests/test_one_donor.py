"""Data of one donor, one day or one task: the shipped configs and the blend just work, and say what they chose."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml

import mmscel
from conftest import run_cli
from mmscel.data.anndata_import import import_anndata
from mmscel.data.cache import prepare
from mmscel.errors import InputError
from mmscel.folds import choose_scheme, load_or_create
from mmscel.store import RunStore, read_manifest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real-data"
BMMC = REAL / "bmmc_cite_starter"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent")
FITTED = ("ridge", "mlp")  # the shipped CITEseq configs fitted here; the GBDTs' take from seconds to a minute


def cells(donors: list[str], days: list[int], n: int = 30) -> pd.DataFrame:
    """Metadata of ``n`` training cells spread over the given donors and days."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"cell_id": [f"c{i}" for i in range(n)], "donor": rng.choice(donors, n), "day": rng.choice(days, n)}
    )


def test_donor_folds_fall_back_to_day_folds_then_to_random_folds(tmp_path, caplog):
    store = RunStore(tmp_path)
    one_donor = cells(["d1"], [2, 3, 4])
    with caplog.at_level(logging.WARNING, logger="mmscel.folds"):
        folds = load_or_create(store, "cite", "donor", one_donor, "fp")
    assert folds.scheme == "donor" and folds.applied == "day" and len(folds.fold_ids) == 3
    assert (pd.Series(folds.fold).groupby(one_donor["day"]).nunique() == 1).all()  # whole days per fold
    [line] = caplog.messages
    assert line.startswith("folds.scheme=donor: needs at least two donor groups") and "using day folds (3 days)" in line
    manifest = read_manifest(store.fold_file("cite", "donor").with_suffix(".json"))
    assert manifest["applied"] == {"scheme": "day", "note": line}

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmscel.folds"):
        again = load_or_create(store, "cite", "donor", one_donor, "fp")  # read back: same folds, said again
    assert caplog.messages == [line] and np.array_equal(again.fold, folds.fold) and again.applied == "day"

    one_day = cells(["d1"], [0])
    folds = load_or_create(store, "multi", "donor", one_day, "fp", n_splits=5, seed=3)
    assert folds.applied == "random" and len(folds.fold_ids) == 5
    note = read_manifest(store.fold_file("multi", "donor").with_suffix(".json"))["applied"]["note"]
    assert "(day folds: needs at least two day groups" in note and note.endswith(
        "using 5 random folds (seed 3) instead"
    )
    with pytest.raises(InputError, match="holds n_splits=5, seed=3; the config asks for 4, 3"):
        load_or_create(store, "multi", "donor", one_day, "fp", n_splits=4, seed=3)


def test_many_donors_keep_the_donor_folds_and_their_manifest_as_before(tmp_path):
    store = RunStore(tmp_path)
    folds = load_or_create(store, "cite", "donor", cells(["d1", "d2", "d3"], [2, 3]), "fp")
    assert folds.applied is None and len(folds.fold_ids) == 3
    manifest = read_manifest(store.fold_file("cite", "donor").with_suffix(".json"))
    assert list(manifest) == ["task", "scheme", "n_splits", "seed", "data_fingerprint", "fingerprint"]


def test_schemes_without_a_way_out_are_still_refused(tmp_path):
    scheme, note = choose_scheme("donor_day", cells(["d1"], [2, 3]), 3)
    assert scheme.name == "donor_day" and note is None  # one donor, two days: still two groups
    with pytest.raises(InputError, match="folds.scheme=last_day: the training cells hold a single day"):
        choose_scheme("last_day", cells(["d1", "d2"], [5]))
    with pytest.raises(InputError, match=r"found 1 \(day folds: .*\) \(random folds: needs at least 5 training cells"):
        load_or_create(RunStore(tmp_path), "cite", "donor", cells(["d1"], [2], n=3), "fp")


def test_auto_folds_choose_donor_then_day_then_random_and_record_the_choice(tmp_path, caplog):
    store = RunStore(tmp_path)
    donors = cells(["d1", "d2", "d3"], [2, 3])
    with caplog.at_level(logging.INFO, logger="mmscel.folds"):
        folds = load_or_create(store, "cite", "auto", donors, "fp")
    assert folds.scheme == "auto" and folds.applied == "donor"
    assert folds.fingerprint == load_or_create(store, "cite", "donor", donors, "fp").fingerprint  # donor's folds
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.getMessage() == "folds.scheme=auto: donor folds (3 donors)"
    manifest = read_manifest(store.fold_file("cite", "auto").with_suffix(".json"))
    assert manifest["scheme"] == "auto" and manifest["applied"] == {"scheme": "donor", "note": record.getMessage()}

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmscel.folds"):
        folds = load_or_create(store, "multi", "auto", cells(["d1"], [2, 3, 4]), "fp")
    assert folds.applied == "day" and len(folds.fold_ids) == 3
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "folds.scheme=auto: day folds (3 days) "
        "(donor folds: needs at least two donor groups in the training cells, found 1)"
    )
    scheme, note = choose_scheme("auto", cells(["d1"], [5]), n_splits=4, seed=2)
    assert scheme.name == "random" and note.startswith("folds.scheme=auto: 4 random folds (seed 2) (donor folds:")
    assert "(day folds: needs at least two day groups" in note
    with pytest.raises(InputError, match=r"^folds.scheme=auto: no scheme splits the training cells \(donor folds"):
        choose_scheme("auto", cells(["d1"], [2], n=3))
    assert mmscel.FOLD_SCHEMES.get("auto")(3, 0).assign(donors).max() == 2  # the registry's class alone: donors


def test_auto_is_the_default_and_the_shipped_setting(tmp_path):
    for config in sorted((ROOT / "configs").glob("*/*.yaml")):
        if config.parent.name in ("cite", "multi"):
            assert mmscel.load_run_config(config).folds.scheme == "auto", config
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"task": "cite", "learner": "ridge"}))
    assert mmscel.load_run_config(bare).folds.scheme == "auto"
    donor = mmscel.load_run_config(ROOT / "configs" / "cite" / "ridge.yaml", ["folds.scheme=donor"])
    assert donor.folds.scheme == "donor"


@pytest.fixture(scope="module")
def one_donor(tmp_path_factory) -> Path:
    """The BMMC CITE starter as a user imports it: train donor s1d1 only (one donor, no day), test donor s1d2."""
    if not REAL.is_dir():
        pytest.skip(f"real data folder {REAL} is absent")
    data = tmp_path_factory.mktemp("one_donor") / "data"
    files = {"inputs": "train_mod1", "targets": "train_mod2", "test_inputs": "test_mod1", "test_targets": "test_mod2"}
    import_anndata(data, "cite", **{key: BMMC / f"{stem}.h5ad" for key, stem in files.items()})
    prepare(data)
    return data


@pytest.mark.realdata
@needs_real
def test_the_shipped_configs_blend_submit_and_export_on_one_donor_of_one_task(one_donor, tmp_path):
    oof = tmp_path / "oof"
    for learner in FITTED:  # the shipped files, unchanged
        run = mmscel.run_level1(ROOT / "configs" / "cite" / f"{learner}.yaml", one_donor, oof_root=oof).record
        assert run.fold_scheme == "auto" and run.cv > run.cv_mean_profile + 0.1 and run.last_day is None
    applied = json.loads((oof / "folds" / "cite_auto.json").read_text())["applied"]
    assert applied["scheme"] == "random" and "folds.scheme=auto: 5 random folds (seed 0)" in applied["note"]
    for other in ("lgbm", "xgb", "catboost"):  # the same fold scheme: they take the same path
        assert mmscel.load_run_config(ROOT / "configs" / "cite" / f"{other}.yaml").folds.scheme == "auto"

    level2 = run_cli("level2", ROOT / "configs" / "blend.yaml", "--data", one_donor, "--oof", oof)
    assert level2.returncode == 0, level2.stderr
    assert f"blend blend: skipped multi: {one_donor} holds no multi data" in level2.stderr
    blend = RunStore(oof).blend("blend")
    assert list(blend.tasks) == ["cite"] and blend.manifest["skipped_tasks"] == ["multi"]
    assert blend.tasks["cite"].runs == [f"cite_{learner}" for learner in sorted(FITTED)]
    assert np.isfinite(blend.tasks["cite"].nested)  # random folds: a nested score as with donors

    record = mmscel.submit(one_donor, oof_root=oof)
    assert record["filled_with_mean_profile"] == ["multi"] and record["rows"] == 289 * 134
    [exported] = mmscel.export(blend="blend", data_dir=one_donor, oof_root=oof)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = anndata.read_h5ad(exported["file"])
    assert adata.shape == (289, 134) and set(adata.obs["donor"]) == {"s1d2"}


@pytest.mark.realdata
@needs_real
def test_a_blend_of_a_task_with_data_but_no_runs_is_still_an_error(one_donor, tmp_path):
    only_multi = tmp_path / "only_multi.yaml"
    only_multi.write_text(yaml.safe_dump({"name": "m", "runs": {"multi": ["multi_*"]}}))
    with pytest.raises(InputError, match=r"blend m: .* holds none of its tasks \(multi\)"):
        mmscel.run_level2(only_multi, one_donor, oof_root=tmp_path / "oof")
    with pytest.raises(InputError, match=r"no finished cite run matches \['cite_\*'\]"):
        mmscel.run_level2(ROOT / "configs" / "blend.yaml", one_donor, oof_root=tmp_path / "oof")
    assert not list((tmp_path / "oof").glob("blend/*/manifest.json"))


@pytest.mark.realdata
@needs_real
def test_donor_folds_asked_for_on_one_donor_fall_back_with_a_warning(one_donor, tmp_path):
    oof = tmp_path / "oof"
    config = ROOT / "configs" / "cite" / "ridge.yaml"
    result = run_cli("level1", config, "--set", "folds.scheme=donor", "--data", one_donor, "--oof", oof)
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "folds.scheme=donor: needs at least two donor groups" in result.stderr
    assert RunStore(oof).run("cite", "cite_ridge").fold_scheme == "donor"
    applied = read_manifest(oof / "folds" / "cite_donor.json")["applied"]
    assert applied["scheme"] == "random" and "using 5 random folds (seed 0) instead" in applied["note"]
