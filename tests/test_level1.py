"""Level-1 runs: learners on both tasks, shared folds, resume, refusals, no pickles."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_cli
from mmscel.data.cache import prepare
from mmscel.learners import LEARNERS
from mmscel.level1 import list_runs, run_level1
from mmscel.store import load_array

FAST_PARAMS = {name: learner.quick_params for name, learner in LEARNERS.items()}
FEATURES = {"cite": {"svd_components": 24}, "multi": {"svd_components": 24, "target_svd_components": 12}}
GBDTS = ("lgbm", "xgb", "catboost")


def fields(task, learner, **extra):
    """A fast run config: one thread, and GBDTs on a compressed protein space (8 models, not 140)."""
    config = {"task": task, "learner": learner, "params": FAST_PARAMS[learner], "features": FEATURES[task], "n_jobs": 1}
    if learner in GBDTS:  # CITEseq: 8 protein-SVD dims; Multiome: the 6 leading of 12 components
        config["targets"] = {"space": "svd", "components": 8 if task == "cite" else 6}
    return {**config, **extra}


def write_config(folder, name, **fields):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.parametrize("task", ["cite", "multi"])
@pytest.mark.parametrize("learner", list(FAST_PARAMS))
def test_every_learner_beats_the_floor(tiny_prepared, tmp_path, task, learner):
    config = write_config(tmp_path, f"{task}_{learner}", **fields(task, learner))
    manifest = run_level1(config, tiny_prepared, oof_root=tmp_path / "oof").manifest
    assert manifest["cv"] > manifest["cv_mean_profile"] + 0.01, manifest["cv"]
    assert manifest["last_day"] > manifest["last_day_mean_profile"]
    run_dir = tmp_path / "oof" / task / f"{task}_{learner}"
    oof, test = load_array(run_dir / "oof.npy"), load_array(run_dir / "test.npy")
    width = 140 if task == "cite" else 12
    assert oof.shape[1] == test.shape[1] == width and oof.dtype == np.float32
    assert np.isfinite(oof).all() and np.isfinite(test).all()
    kinds = {"cite": "protein_svd" if learner in GBDTS else "proteins", "multi": "components"}
    assert manifest["target_space"]["kind"] == kinds[task]
    assert {"data_fingerprint", "fold_fingerprint", "config_hash", "libraries", "peak_rss_mb", "wall_seconds"} <= set(
        manifest
    )


def test_compressed_protein_space_and_refit(tiny_prepared, tmp_path):
    config = write_config(
        tmp_path,
        "svd_space",
        task="cite",
        learner="ridge",
        features=FEATURES["cite"],
        targets={"space": "svd", "components": 12, "standardize_cells": True},
        test_predictions="refit",
    )
    manifest = run_level1(config, tiny_prepared, oof_root=tmp_path / "oof").manifest
    assert manifest["shapes"]["oof"][1] == 140 and manifest["target_space"]["kind"] == "protein_svd"
    assert "refit" in manifest["folds"] and manifest["cv"] > manifest["cv_mean_profile"]


def test_fold_mean_and_refit_averages_the_two(tiny_prepared, tmp_path):
    tests = {}
    for mode in ("fold_mean", "refit", "fold_mean_and_refit"):
        config = write_config(tmp_path, mode, **fields("multi", "ridge", test_predictions=mode))
        manifest = run_level1(config, tiny_prepared, oof_root=tmp_path / "oof").manifest
        assert ("refit" in manifest["folds"]) == (mode != "fold_mean")
        tests[mode] = load_array(tmp_path / "oof" / "multi" / mode / "test.npy")
    expected = (tests["fold_mean"].astype(np.float64) + tests["refit"]) / 2
    assert not np.allclose(tests["fold_mean"], tests["refit"], atol=1e-4)
    np.testing.assert_allclose(tests["fold_mean_and_refit"], expected, rtol=1e-5, atol=1e-6)


def test_an_unknown_test_predictions_value_is_one_line(tiny_prepared, tmp_path):
    config = write_config(tmp_path, "odd", **fields("cite", "ridge", test_predictions="both"))
    result = run_cli("level1", str(config), "--data", str(tiny_prepared), "--oof", str(tmp_path / "oof"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "test_predictions" in lines[0] and "odd.yaml" in lines[0], result.stderr


def test_fold_files_are_shared_across_runs(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    first = run_level1(
        write_config(tmp_path, "a", task="cite", learner="ridge", features=FEATURES["cite"]),
        tiny_prepared,
        oof_root=oof,
    )
    fold_file = oof / "folds" / "cite_auto.parquet"
    stamp = fold_file.stat().st_mtime_ns
    second = run_level1(
        write_config(tmp_path, "b", task="cite", learner="ridge", params={"alpha": 1.0}, features=FEATURES["cite"]),
        tiny_prepared,
        oof_root=oof,
    )
    assert fold_file.stat().st_mtime_ns == stamp
    assert first.manifest["fold_fingerprint"] == second.manifest["fold_fingerprint"]
    assert first.manifest["feature_fingerprint"] == second.manifest["feature_fingerprint"]
    assert len(list((oof / "features").iterdir())) == 1


@pytest.mark.parametrize("scheme", ["day", "donor_day", "last_day", "random"])
def test_fold_schemes(tiny_prepared, tmp_path, scheme):
    config = write_config(
        tmp_path,
        scheme,
        task="cite",
        learner="ridge",
        features=FEATURES["cite"],
        folds={"scheme": scheme, "n_splits": 3},
    )
    manifest = run_level1(config, tiny_prepared, oof_root=tmp_path / "oof").manifest
    oof = load_array(tmp_path / "oof" / "cite" / scheme / "oof.npy")
    if scheme == "last_day":
        assert (
            0 < manifest["validated_rows"] < len(oof)
            and np.isnan(oof).any(axis=1).sum() == len(oof) - manifest["validated_rows"]
        )
        assert manifest["last_day"] == manifest["folds"]["0"]["score"]
    else:
        assert manifest["validated_rows"] == len(oof) and "last_day" in manifest["folds"]


@pytest.mark.parametrize("learner", ["ridge", "lgbm"])
def test_a_killed_run_resumes_to_identical_results(tiny_prepared, tmp_path, monkeypatch, learner):
    config = write_config(tmp_path, "ref", **fields("multi", learner))
    reference = run_level1(config, tiny_prepared, oof_root=tmp_path / "a")
    from mmscel import store

    real_save = store.FoldCheckpoint.save
    calls = []

    def killed_on_second_fold(self, predictions, info):
        calls.append(info["fold"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after fitting, before the checkpoint lands
        return real_save(self, predictions, info)

    monkeypatch.setattr(store.FoldCheckpoint, "save", killed_on_second_fold)
    with pytest.raises(KeyboardInterrupt):
        run_level1(config, tiny_prepared, oof_root=tmp_path / "b")
    monkeypatch.setattr(store.FoldCheckpoint, "save", real_save)
    resumed = run_level1(config, tiny_prepared, oof_root=tmp_path / "b")
    assert not resumed.reused
    for name in ("oof.npy", "test.npy"):
        a, b = load_array(reference.run_dir / name), load_array(resumed.run_dir / name)
        assert a.tobytes() == b.tobytes(), name
    assert resumed.manifest["cv"] == reference.manifest["cv"]


def test_finished_runs_are_reused_and_changed_configs_refused(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    config = write_config(tmp_path, "r", task="cite", learner="ridge", features=FEATURES["cite"])
    assert not run_level1(config, tiny_prepared, oof_root=oof).reused
    assert run_level1(config, tiny_prepared, oof_root=oof).reused
    changed = write_config(
        tmp_path, "r", task="cite", learner="ridge", params={"alpha": 3.0}, features=FEATURES["cite"]
    )
    result = run_cli("level1", changed, "--data", tiny_prepared, "--oof", oof)
    assert result.returncode == 2 and "different config" in result.stderr and "--overwrite" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("level1", changed, "--data", tiny_prepared, "--oof", oof, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads((oof / "cite" / "r" / "manifest.json").read_text())["config"]["params"] == {"alpha": 3.0}


@pytest.mark.parametrize(
    "fields,fragments",
    [
        ({"params": {"alpah": 1.0}}, ["params.alpah", "alpha"]),
        ({"learner": "rigde"}, ["learner", "ridge", "lgbm"]),
        ({"folds": {"scheme": "donr"}}, ["folds.scheme", "donor"]),
        ({"features": {"svd_component": 8}}, ["features.svd_component", "svd_components"]),
        ({"seeed": 1}, ["seeed", "allowed"]),
    ],
)
def test_config_typos_are_refused_with_clear_errors(tiny_prepared, tmp_path, fields, fragments):
    config = write_config(tmp_path, "typo", **{"task": "cite", "learner": "ridge", **fields})
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", tmp_path / "oof")
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "typo.yaml" in line and "Traceback" not in line
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "oof" / "cite").exists()


def test_no_pickle_under_oof(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    for learner in LEARNERS.names():
        run_level1(write_config(tmp_path, learner, **fields("cite", learner)), tiny_prepared, oof_root=oof)
    files = [p for p in oof.rglob("*") if p.is_file()]
    assert files
    for path in files:
        head = path.read_bytes()[:2]
        assert not head.startswith(b"\x80"), f"{path} looks like a pickle"
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                [archive[key] for key in archive.files]
    suffixes = {p.suffix for p in files}
    assert suffixes <= {".npy", ".npz", ".json", ".parquet", ".txt", ".ubj", ".cbm", ".pt", ".lock", ".log"}, suffixes


def test_runs_command_lists_runs(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    run_level1(
        write_config(tmp_path, "one", task="cite", learner="ridge", features=FEATURES["cite"]),
        tiny_prepared,
        oof_root=oof,
    )
    run_level1(
        write_config(tmp_path, "two", task="multi", learner="ridge", features=FEATURES["multi"]),
        tiny_prepared,
        oof_root=oof,
    )
    assert [run.name for run in list_runs(oof)] == ["one", "two"]
    result = run_cli("runs", "--oof", oof, "--json")
    assert result.returncode == 0 and {r["run"] for r in json.loads(result.stdout)} == {"one", "two"}
    result = run_cli("runs", "--oof", oof)
    assert "cite runs" in result.stdout and "multi runs" in result.stdout


def test_multi_refuses_protein_only_target_options(tiny_prepared, tmp_path):
    config = write_config(
        tmp_path, "bad", task="multi", learner="ridge", features=FEATURES["multi"], targets={"standardize_cells": True}
    )
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", tmp_path / "oof")
    assert result.returncode == 2 and "Multiome" in result.stderr


def test_sigkill_mid_run_then_resume_is_bit_identical(tiny_prepared, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    params = {"hidden": [64], "epochs": 40, "patience": 100, "batch_size": 32}
    config = write_config(tmp_path, "killed", **fields("multi", "mlp", params=params))
    reference = run_level1(config, tiny_prepared, oof_root=tmp_path / "reference")
    oof = tmp_path / "killed_root"
    command = [
        sys.executable,
        "-m",
        "mmscel.cli",
        "level1",
        str(config),
        "--data",
        str(tiny_prepared),
        "--oof",
        str(oof),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_fold = oof / "multi" / "killed" / "folds" / "fold_0" / "done.json"
    deadline = time.time() + 120
    while not first_fold.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_fold.exists(), "the run never finished its first fold"
    assert not (oof / "multi" / "killed" / "manifest.json").exists(), "the run finished before it could be killed"
    resumed = run_level1(config, tiny_prepared, oof_root=oof)
    assert (
        resumed.manifest["folds"]["0"]["seconds"] == json.loads(first_fold.read_text())["seconds"]
    )  # fold 0 was reused
    for name in ("oof.npy", "test.npy"):
        assert load_array(reference.run_dir / name).tobytes() == load_array(resumed.run_dir / name).tobytes()


def test_a_run_made_from_other_data_is_refused_not_reused(tiny_copy, tmp_path):
    oof = tmp_path / "oof"
    config = write_config(tmp_path, "r", task="cite", learner="ridge", features=FEATURES["cite"])
    assert not run_level1(config, tiny_copy, oof_root=oof).reused
    targets = tiny_copy / "train_cite_targets.h5"
    frame = pd.read_hdf(targets)
    (frame * 1.01).to_hdf(targets, key="train_cite_targets", format="fixed")
    prepare(tiny_copy)
    result = run_cli("level1", config, "--data", tiny_copy, "--oof", oof)
    assert result.returncode == 2 and "run 'r' was made from other data" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_non_string_top_level_key_is_a_one_line_error(tiny_prepared, tmp_path):
    config = tmp_path / "odd.yaml"
    config.write_text("task: cite\nlearner: ridge\n1: 2\n")
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", tmp_path / "oof")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "odd.yaml" in result.stderr and "must be strings" in result.stderr


def test_damaged_fold_files_and_markers(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    path = write_config(
        tmp_path,
        "r",
        task="cite",
        learner="ridge",
        features=FEATURES["cite"],
        folds={"scheme": "donor_day", "n_splits": 3},
    )
    first = run_level1(path, tiny_prepared, oof_root=oof)
    # A different n_splits for the same donor_day file is refused, not silently ignored.
    other = write_config(
        tmp_path,
        "s",
        task="cite",
        learner="ridge",
        features=FEATURES["cite"],
        folds={"scheme": "donor_day", "n_splits": 4},
    )
    result = run_cli("level1", other, "--data", tiny_prepared, "--oof", oof)
    assert result.returncode == 2 and "n_splits=3" in result.stderr and "Traceback" not in result.stderr
    # A damaged fold marker means: redo that fold, with the same result.
    oof_before = load_array(first.run_dir / "oof.npy")
    marker = next(first.run_dir.glob("folds/*/done.json"))
    marker.write_text("{not json")
    (first.run_dir / "manifest.json").unlink()
    again = run_level1(path, tiny_prepared, oof_root=oof)
    np.testing.assert_array_equal(load_array(again.run_dir / "oof.npy"), oof_before)
    assert json.loads(marker.read_text())["fold"] == marker.parent.name.removeprefix("fold_")
    assert not list(first.run_dir.rglob(".model.*"))  # no staging folders left behind
    # A damaged fold file is a one-line error naming it.
    (oof / "folds" / "cite_donor_day.parquet").write_bytes(b"PAR1 garbage")
    (first.run_dir / "manifest.json").unlink()
    shutil.rmtree(first.run_dir / "folds")
    result = run_cli("level1", path, "--data", tiny_prepared, "--oof", oof)
    assert (
        result.returncode == 2 and "cite_donor_day.parquet" in result.stderr and "unreadable fold file" in result.stderr
    )
