"""``--set KEY=VALUE`` on level1, level2 and tune: typed values, validated like the file, part of the hash."""

import pytest
import yaml

from conftest import run_cli
from mmscel.blend.run import load_blend_config
from mmscel.config import apply_overrides, load_run_config
from mmscel.errors import InputError
from mmscel.store import RunStore, digest
from test_cli import _assert_bad_input
from test_tune import ALPHA, RIDGE, write


def test_values_are_yaml_and_dotted_keys_reach_into_mappings():
    raw = {"params": {"alpha": 1.0}, "folds": {"scheme": "donor"}}
    merged = apply_overrides(
        raw,
        [
            "params.alpha=0.001",
            "folds.scheme=random",
            "targets.components=8",
            "params.hidden=[64, 32]",
            "features={svd_components: 16}",
            "targets.standardize_cells=true",
            "tune.params.alpha={type: float, low: 1, high: 10}",
            "name = cite_x",
        ],
    )
    assert merged["params"] == {"alpha": 0.001, "hidden": [64, 32]}
    assert merged["folds"] == {"scheme": "random"} and merged["features"] == {"svd_components": 16}
    assert merged["targets"] == {"components": 8, "standardize_cells": True}
    assert merged["tune"] == {"params.alpha": {"type": "float", "low": 1, "high": 10}}
    assert merged["name"] == "cite_x"
    assert raw == {"params": {"alpha": 1.0}, "folds": {"scheme": "donor"}}  # the file's mapping is left alone
    assert apply_overrides(raw, ["params.alpha=2", "params.alpha=3"])["params"]["alpha"] == 3  # the last one wins


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("params.alpha", "--set params.alpha: expected KEY=VALUE"),
        ("=3", "--set =3: expected KEY=VALUE"),
        ("params..alpha=3", "--set params..alpha=3: expected KEY=VALUE"),
        ("params.alpha=[1", "--set params.alpha=[1: the value is not YAML"),
        ("seed.x=1", "--set seed.x=1: 'seed' holds a value, not a mapping of keys"),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(setting, message):
    with pytest.raises(InputError) as caught:
        apply_overrides({"seed": 0}, [setting])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_overrides_are_validated_like_the_file_and_change_the_hash(tmp_path):
    path = write(tmp_path / "cite", "ridge", **RIDGE)
    plain = load_run_config(path)
    changed = load_run_config(path, ["params.alpha=0.001", "folds.scheme=random", "folds.n_splits=3"])
    assert changed.params["alpha"] == 0.001 and changed.folds.scheme == "random" and changed.folds.n_splits == 3
    assert changed.name == plain.name == "cite_ridge"
    assert digest(changed.hashed()) != digest(plain.hashed())
    assert digest(load_run_config(path, ["params.alpha=10.0"]).hashed()) == digest(plain.hashed())  # same values

    cases = {
        "paramz.alpha=1": "--set paramz.alpha=1: unknown key 'paramz' (allowed: name, task, learner, params,",
        "folds.schem=random": "--set folds.schem=random: unknown key 'folds.schem' (allowed: scheme, n_splits, seed)",
        "params.alpah=1": "--set params.alpah=1: unknown key 'params.alpah' (allowed: alpha",
        "folds.scheme=donr": "--set folds.scheme=donr: 'folds.scheme': unknown fold scheme 'donr'",
        "params.alpha=-1": "--set params.alpha=-1: 'params.alpha'",
    }
    for setting, message in cases.items():
        with pytest.raises(InputError) as caught:
            load_run_config(path, [setting])
        assert str(caught.value).startswith(message), str(caught.value)
    bad_file = write(tmp_path, "bad", **{**RIDGE, "seeds": 0})
    with pytest.raises(InputError, match=r"^.*bad\.yaml: 'seeds'"):  # the file's own problem still names the file
        load_run_config(bad_file, ["params.alpha=1"])


def test_blend_overrides():
    config = load_blend_config({"name": "b", "method": "greedy"}, ["method=equal", "runs.cite=[ridge]"])
    assert config.method == "equal" and config.runs == {"cite": ["ridge"]}
    with pytest.raises(InputError, match=r"^--set n_trial=3: unknown key 'n_trial' \(allowed: name, method, runs,"):
        load_blend_config({"name": "b"}, ["n_trial=3"])


def test_level1_runs_with_overrides_as_another_config(tiny_prepared, tmp_path):
    config = write(tmp_path / "cite", "ridge", **RIDGE)
    oof = tmp_path / "oof"
    where = ("--data", tiny_prepared, "--oof", oof)
    assert run_cli("level1", config, *where).returncode == 0
    refused = run_cli("level1", config, *where, "--set", "params.alpha=3")  # never mixed with the file's run
    _assert_bad_input(refused, "cite_ridge", "exists with a different config")
    result = run_cli("level1", config, *where, "--set", "params.alpha=3", "--set", "name=cite_ridge_a3")
    assert result.returncode == 0, result.stderr
    store = RunStore(oof)
    file_run, changed = store.run("cite", "cite_ridge"), store.run("cite", "cite_ridge_a3")
    assert changed.manifest["config"]["params"] == {"alpha": 3.0}
    assert changed.manifest["config_hash"] != file_run.manifest["config_hash"]


def test_bad_settings_are_refused_by_every_command_before_any_work(tmp_path):
    config = write(tmp_path / "cite", "ridge", **RIDGE, tune=ALPHA)
    blend = tmp_path / "blend.yaml"
    blend.write_text(yaml.safe_dump({"name": "b", "method": "greedy"}))
    where = ("--data", tmp_path / "nothing", "--oof", tmp_path / "oof")
    _assert_bad_input(run_cli("level1", config, *where, "--set", "paramz.alpha=1"), "--set paramz.alpha=1", "allowed:")
    _assert_bad_input(run_cli("level2", blend, *where, "--set", "method=bogus"), "--set method=bogus", "'method'")
    _assert_bad_input(run_cli("tune", config, *where, "--set", "folds.schem=x"), "--set folds.schem=x", "scheme")
    _assert_bad_input(run_cli("tune", config, *where, "--set", "oops"), "--set oops: expected KEY=VALUE")
    assert not (tmp_path / "oof").exists()


def test_a_device_on_a_learner_without_one_is_refused_in_one_line(tmp_path):
    config = write(tmp_path / "cite", "ridge", task="cite", learner="ridge")
    result = run_cli("level1", config, "--set", "params.device=cuda", "--data", tmp_path / "none")
    _assert_bad_input(result, "--set params.device=cuda: unknown key 'params.device' (allowed: ")
    with pytest.raises(InputError, match=r"ridge\.yaml: unknown key 'params.device'"):
        load_run_config(write(tmp_path / "cite", "ridge", task="cite", learner="ridge", params={"device": "cuda"}))
