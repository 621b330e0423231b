"""``params.device``: CPU by default and unchanged; ``cuda`` validated, mapped to each library, refused without a GPU.

This machine has no GPU: the CUDA path is tested up to the library parameters it
produces and the refusal before any fit, with the real libraries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import run_cli
from mmscel.config import load_run_config
from mmscel.cv import cross_validate
from mmscel.errors import InputError
from mmscel.learners import device as device_module
from mmscel.learners import learner_class, make_learner
from mmscel.learners.base import FitData, TargetBasis
from mmscel.learners.device import catboost_cuda_problem, gpu_version_problem, older_than
from test_cli import _assert_bad_input

GPU_LEARNERS = ("xgb", "catboost", "mlp")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = [CONFIGS / task / f"{name}.yaml" for task in ("cite", "multi") for name in GPU_LEARNERS]


def small_data(n=240, d=12, genes=40, k=6, seed=0):
    """Train, early-stopping and test parts of Y_full = Z @ V + mean + noise; Y = the coefficients Z."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Z = np.tanh(X @ rng.normal(size=(d, k)) / np.sqrt(d) * 2).astype(np.float32)
    V = np.linalg.qr(rng.normal(size=(genes, k)))[0].T.astype(np.float32)
    mean = np.abs(rng.normal(size=genes)).astype(np.float32)
    Y_full = (Z @ V + mean + 0.05 * rng.normal(size=(n, genes))).astype(np.float32)
    parts = [slice(0, 160), slice(160, 200), slice(200, n)]
    train, valid, test = (FitData(X[rows], Z[rows], Y_full[rows]) for rows in parts)
    return train, valid, test, TargetBasis(components=V, mean=mean)


def fitted_predictions(name: str, extra: dict) -> np.ndarray:
    train, valid, test, basis = small_data()
    learner = learner_class(name)({**learner_class(name).quick_params, **extra}, seed=3, n_jobs=1)
    return learner.fit(train, valid, basis if name == "mlp" else None).predict(test.X)


def write_config(folder, learner, **params):
    path = folder / "cite" / f"{learner}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"task": "cite", "learner": learner, "params": params, "n_jobs": 1}))
    return path


# -- the default changes nothing -----------------------------------------------------------------


@pytest.mark.parametrize("name", GPU_LEARNERS)
def test_explicit_cpu_fits_exactly_as_the_default(name):
    default = fitted_predictions(name, {})
    assert default.dtype == np.float32
    np.testing.assert_array_equal(fitted_predictions(name, {"device": "cpu"}), default)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_a_config_without_device_hashes_its_params_as_written(path):
    config = load_run_config(path)
    written = yaml.safe_load(path.read_text()).get("params", {})
    assert config.learner_params().device == "cpu"
    assert "device" not in config.hashed()["params"] and config.hashed()["params"] == written


def test_cpu_parameters_reach_the_libraries_unchanged():
    assert "device" not in make_learner("xgb", {}).booster_params()
    catboost = make_learner("catboost", {}).booster_params()
    assert "task_type" not in catboost and "boosting_type" not in catboost
    for name in (*GPU_LEARNERS, "ridge", "lgbm"):
        make_learner(name, {}).check_device()  # nothing to check on the CPU


# -- what cuda asks of each library -----------------------------------------------------------


def test_xgboost_cuda_keeps_hist_on_the_gpu():
    params = make_learner("xgb", {"device": "cuda"}).booster_params()
    assert params["device"] == "cuda" and params["tree_method"] == "hist"


@pytest.mark.parametrize("loss", ["MultiRMSE", "RMSE"])
def test_catboost_cuda_is_task_type_gpu_with_the_plain_scheme(loss):
    params = make_learner("catboost", {"device": "cuda", "loss": loss}).booster_params()
    assert params["task_type"] == "GPU" and params["boosting_type"] == "Plain"
    assert "device" not in params and params["loss_function"] == loss


def test_mlp_records_device_in_its_files_only_when_not_cpu(tmp_path):
    train, valid, _, _ = small_data()
    learner = make_learner("mlp", {**learner_class("mlp").quick_params, "epochs": 2}, n_jobs=1).fit(train, valid)
    learner.save(tmp_path)
    assert "device" not in json.loads((tmp_path / "mlp.json").read_text())["params"]
    assert make_learner("mlp", {"device": "cuda"}).params.device == "cuda"


# -- cuda without a GPU: refused before anything is fitted or written ----------------------------


@pytest.mark.parametrize("name", GPU_LEARNERS)
def test_cuda_without_a_gpu_is_one_line_naming_the_library_check(name):
    with pytest.raises(InputError, match=r"^run: params\.device: cuda asked, but .*set params\.device=cpu$") as info:
        make_learner(name, {"device": "cuda"}).check_device("run: params.device")
    assert "\n" not in str(info.value)
    check = {"xgb": "XGBoost", "catboost": "get_gpu_device_count", "mlp": "torch.cuda.is_available"}[name]
    assert check in str(info.value)


def test_a_seed_bag_checks_its_members_device():
    with pytest.raises(InputError, match="torch.cuda.is_available"):
        make_learner("mlp", {"device": "cuda"}, seeds=2).check_device()


def test_cross_validation_refuses_before_the_first_fold():
    train, _, _, _ = small_data()
    folds = np.arange(len(train.X)) % 2
    with pytest.raises(InputError, match=r"^params\.device: cuda asked"):
        cross_validate(make_learner("mlp", {"device": "cuda"}, n_jobs=1), train.X, train.Y, folds)


def test_catboost_gpu_count_prints_nothing(capfd):
    catboost_cuda_problem()
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", GPU_LEARNERS)
def test_level1_with_cuda_exits_2_before_writing(tmp_path, name):
    config = write_config(tmp_path, name)
    oof = tmp_path / "oof"
    result = run_cli("level1", config, "--set", "params.device=cuda", "--data", tmp_path / "none", "--oof", oof)
    _assert_bad_input(result, f"cite_{name}: params.device: cuda asked, but")
    assert not oof.exists()


# -- bad values and combinations -----------------------------------------------------------------


@pytest.mark.parametrize("name", GPU_LEARNERS)
def test_a_bad_device_is_refused_with_the_allowed_values(tmp_path, name):
    with pytest.raises(InputError, match=r"'params\.device': Input should be 'cpu' or 'cuda'$"):
        load_run_config(write_config(tmp_path, name, device="gpu"))


@pytest.mark.parametrize("name", ["ridge", "lgbm"])
def test_cpu_only_learners_refuse_device_as_an_unknown_key(tmp_path, name):
    with pytest.raises(InputError, match=r"unknown key 'params\.device' \(allowed: "):
        load_run_config(write_config(tmp_path, name, device="cuda"))


def test_versions_compare_by_their_numbers():
    assert older_than("1.2", "1.2.1") and older_than("1.2.0", "1.2.1") and older_than("2.1.4", "3.2")
    assert not older_than("1.2.1", "1.2.1") and not older_than("1.2.10", "1.2.1") and not older_than("3.2.0", "3.2")
    assert not older_than("3.2.0rc1", "3.2") and not older_than("2.13.0+cpu", "2.1")
    assert older_than("a custom build", "1.0")  # unreadable: not trusted to have the feature


def test_multirmse_on_a_gpu_needs_catboost_1_2_1():
    problem = gpu_version_problem("catboost", "1.2.1", "loss MultiRMSE", installed="1.2.0")
    assert problem.startswith("cuda with loss MultiRMSE needs catboost >= 1.2.1 (installed: 1.2.0)")
    assert "params.loss" in problem
    assert gpu_version_problem("catboost", "1.2.1", "loss MultiRMSE", installed="1.2.10") is None


@pytest.mark.parametrize(
    ("name", "params", "installed", "key"),
    [
        ("catboost", {"loss": "MultiRMSE"}, "1.2.0", "params.loss"),
        ("xgb", {"multi_strategy": "multi_output_tree"}, "3.1.2", "params.multi_strategy"),
    ],
)
def test_an_old_library_refuses_the_gpu_combination_at_validation(tmp_path, monkeypatch, name, params, installed, key):
    config = write_config(tmp_path, name, **params, device="cuda")
    load_run_config(config)  # the installed versions fit both on a GPU
    monkeypatch.setattr(device_module, "version", lambda library: installed)
    with pytest.raises(InputError, match=rf"'params\.device': cuda with .* \(installed: {installed}\);") as info:
        load_run_config(config)
    assert key in str(info.value)
    load_run_config(write_config(tmp_path, name, **params, device="cpu"))  # the CPU fits every version
