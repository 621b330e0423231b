"""Optional MLflow logging: level-1 runs, blends and tuning trials in a real local store; off by default."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from mmscel import tracking
from mmscel.blend.run import run_level2
from mmscel.level1 import run_level1
from mmscel.tune.session import tune

RIDGE = {"task": "cite", "learner": "ridge", "params": {"alpha": 10.0}, "features": {"svd_components": 24}, "n_jobs": 1}
ALPHA = {"params.alpha": {"type": "float", "low": 0.01, "high": 1e8, "log": True}}


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no network from the tests, here or in subprocesses
    monkeypatch.delenv(tracking.ENV, raising=False)


def write(folder: Path, stem: str, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def default_uri(oof: Path) -> str:
    return f"sqlite:///{(oof / 'mlflow' / 'mlflow.db').resolve()}"


def logged_runs(uri: str, experiment: str):
    found = client(uri).get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    return client(uri).search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])


def test_the_environment_and_the_flags_decide(monkeypatch):
    for value, expected in (("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True)):
        monkeypatch.setenv(tracking.ENV, value)
        assert tracking.from_environment() is expected
    monkeypatch.setenv(tracking.ENV, "sqlite:////somewhere/x.db")
    assert tracking.current() == "sqlite:////somewhere/x.db"
    monkeypatch.setenv(tracking.ENV, "0")
    with tracking.enabled(flag=True):
        assert tracking.current() is True
        with tracking.enabled(uri="http://host:5000"):
            assert tracking.current() == "http://host:5000"
        assert tracking.current() is True
    assert tracking.current() is False
    assert tracking.tracking_uri(True, "oof").endswith("/oof/mlflow/mlflow.db")
    assert tracking.flatten({"params": {"alpha": 1.0, "x": {}}, "n_jobs": 2}) == {
        "params.alpha": 1.0,
        "params.x": {},
        "n_jobs": 2,
    }


def test_level1_logs_its_manifest_to_the_store_beside_the_runs(tiny_prepared, tmp_path):
    config = write(tmp_path / "configs", "ridge", name="cite_ridge", **RIDGE)
    oof = tmp_path / "oof"
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", oof, "--mlflow")
    assert result.returncode == 0, result.stderr
    uri = default_uri(oof)
    assert f"mlflow ui --backend-store-uri {uri}" in result.stderr
    manifest = json.loads((oof / "cite" / "cite_ridge" / "manifest.json").read_text())
    [run] = logged_runs(uri, "level1-cite")
    assert run.info.run_name == "cite_ridge" and run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["params.alpha"] == "10.0" and params["features.svd_components"] == "24"
    assert params["folds.scheme"] == manifest["config"]["folds"]["scheme"] and params["learner"] == "ridge"
    assert metrics["cv"] == pytest.approx(manifest["cv"]) and metrics["last_day"] == pytest.approx(manifest["last_day"])
    assert metrics["cv_mean_profile"] == pytest.approx(manifest["cv_mean_profile"])
    assert metrics["wall_seconds"] == pytest.approx(manifest["wall_seconds"])
    for name, fold in manifest["folds"].items():
        assert metrics[f"fold.{name}.score"] == pytest.approx(fold["score"])
    for key in ("task", "learner", "run", "config_hash", "data_fingerprint", "feature_fingerprint", "fold_fingerprint"):
        assert tags[f"mmscel.{key}"] == manifest[key]
    artifacts = sorted(a.path for a in client(uri).list_artifacts(run.info.run_id))
    assert artifacts == ["manifest.json", "run.log"]
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to((oof / "mlflow" / "artifacts").resolve())
    assert not (tmp_path / "mlruns").exists() and not Path("mlruns").exists()

    # tracking is no part of the run hash: the same run is found finished, and not logged again
    again = run_cli("level1", config, "--data", tiny_prepared, "--oof", oof, "--mlflow")
    assert again.returncode == 0 and "(reused)" in again.stdout, again.stderr
    assert len(logged_runs(uri, "level1-cite")) == 1


def test_without_the_flag_nothing_is_logged_and_mlflow_is_never_imported(tiny_prepared, tmp_path):
    config = write(tmp_path / "configs", "ridge", name="cite_ridge", **RIDGE)
    oof = tmp_path / "oof"
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('mlflow imported:', 'mlflow' in sys.modules))\n"
        "from mmscel.cli import main\n"
        f"sys.argv = ['mmscel', 'level1', {str(config)!r}, '--data', {str(tiny_prepared)!r}, '--oof', {str(oof)!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mlflow imported: False" in result.stdout
    assert (oof / "cite" / "cite_ridge" / "manifest.json").is_file() and not (oof / "mlflow").exists()
    assert "MLflow" not in result.stderr


def test_a_missing_mlflow_is_one_line_before_anything_runs(tiny_prepared, tmp_path):
    config = write(tmp_path / "configs", "ridge", name="cite_ridge", **RIDGE)
    oof = tmp_path / "oof"
    script = (
        "import sys\n"
        "sys.modules['mlflow'] = None\n"  # import mlflow raises ImportError, as when it is not installed
        "from mmscel.cli import main\n"
        f"sys.argv = ['mmscel', 'level1', {str(config)!r}, '--data', {str(tiny_prepared)!r}, '--oof', {str(oof)!r},"
        " '--mlflow']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "mlflow is not installed: pip install 'mmscel[mlflow]'" in result.stderr
    assert not (oof / "cite").exists()


def test_a_blend_logs_its_scores_and_weights_per_task(tiny_prepared, tmp_path, monkeypatch):
    oof = tmp_path / "oof"
    for name, alpha in (("cite_ridge_a", 10.0), ("cite_ridge_b", 1000.0)):
        run_level1({**RIDGE, "name": name, "params": {"alpha": alpha}}, tiny_prepared, oof_root=oof)
    uri = f"sqlite:///{tmp_path / 'elsewhere' / 'tracking.db'}"
    monkeypatch.setenv(tracking.ENV, uri)  # the Python API follows the environment
    config = {"name": "b", "method": "greedy", "runs": {"cite": ["cite_ridge_*"]}, "nested_trials": 10}
    blend = run_level2(config, tiny_prepared, oof_root=oof)
    [run] = logged_runs(uri, tracking.LEVEL2_EXPERIMENT)
    info, metrics = blend.tasks["cite"], run.data.metrics
    assert run.info.run_name == "b" and run.data.params["method"] == "greedy"
    assert metrics["cite.nested"] == pytest.approx(info.nested)
    assert metrics["cite.in_sample"] == pytest.approx(info.in_sample)
    assert metrics["cite.last_day"] == pytest.approx(info.last_day)
    for name, weight in zip(info.runs, info.weights):
        assert metrics[f"cite.weight.{name}"] == pytest.approx(weight)
    assert run.data.tags["mmscel.cite.runs"] == ",".join(info.runs)
    artifacts = {a.path for a in client(uri).list_artifacts(run.info.run_id)}
    assert {"manifest.json", "weights.json", "blend.log"} <= artifacts
    assert (tmp_path / "elsewhere" / "artifacts").is_dir() and not (oof / "mlflow").exists()


def test_a_tuning_session_logs_one_run_per_trial(tiny_prepared, tmp_path):
    config = write(tmp_path, "ridge", **RIDGE, folds={"scheme": "random", "n_splits": 3}, tune=ALPHA)
    oof = tmp_path / "oof"
    tried = ({"params.alpha": 10.0}, {"params.alpha": 20.0}, {"params.alpha": 1e8})  # the last one is pruned
    with tracking.enabled(flag=True):
        result = tune(config, tiny_prepared, oof_root=oof, trials=3, pruner="median", enqueue=tried, plots=False)
    runs = logged_runs(default_uri(oof), result.name)
    assert [run.info.run_name for run in runs] == ["trial 0", "trial 1", "trial 2"]
    for run, trial in zip(runs, result.study.trials):
        assert float(run.data.params["params.alpha"]) == trial.params["params.alpha"]
        assert run.data.tags["mmscel.state"] == trial.state.name
        assert run.data.tags["mmscel.data_fingerprint"] == result.study.user_attrs["data_fingerprint"]
        if trial.value is not None:
            assert run.data.metrics["value"] == pytest.approx(trial.value)
    assert [run.info.status for run in runs] == ["FINISHED", "FINISHED", "KILLED"]
    history = client(default_uri(oof)).get_metric_history(runs[0].info.run_id, "fold_score")
    assert sorted(m.step for m in history) == sorted(result.study.trials[0].intermediate_values)


def test_an_unwritable_tracking_store_warns_once_and_the_work_finishes(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    oof.mkdir()
    (oof / "mlflow").write_text("a file where the tracking folder belongs")
    config = write(tmp_path / "configs", "ridge", name="cite_ridge", **RIDGE)
    result = run_cli("level1", config, "--data", tiny_prepared, "--oof", oof, "--mlflow")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "not logged to MLflow" in line]
    assert len(warnings) == 1 and "cite/cite_ridge" in warnings[0], result.stderr
    assert json.loads((oof / "cite" / "cite_ridge" / "manifest.json").read_text())["completed"]

    searched = write(tmp_path / "configs", "tuned", **RIDGE, tune=ALPHA)
    session = run_cli("tune", searched, "--trials", "2", "--data", tiny_prepared, "--oof", oof, "--mlflow")
    assert session.returncode == 0, session.stderr
    warnings = [line for line in session.stderr.splitlines() if "not logged to MLflow" in line]
    assert len(warnings) == 1 and "trial 0" in warnings[0], session.stderr  # and no more tries after it
    assert "trial 1 COMPLETE" in session.stderr


def test_a_config_key_switches_tracking_on_without_changing_the_run(tiny_prepared, tmp_path):
    from mmscel.config import load_run_config

    plain = write(tmp_path / "plain", "ridge", name="cite_ridge", **RIDGE)
    tracked = write(tmp_path / "tracked", "ridge", name="cite_ridge", tracking="mlflow", **RIDGE)
    assert load_run_config(tracked).hashed() == load_run_config(plain).hashed()  # tracking is never hashed
    oof = tmp_path / "oof"
    record = run_level1(tracked, tiny_prepared, oof_root=oof).record
    [run] = logged_runs(default_uri(oof), "level1-cite")
    assert run.data.tags["mmscel.config_hash"] == record.manifest["config_hash"]
    assert "tracking" not in record.manifest["config"]

    blend = write(tmp_path / "blend", "blend", name="b", runs={"cite": ["cite_*"]}, n_trials=5, tracking="mlflow")
    run_level2(blend, tiny_prepared, oof_root=oof)
    [logged] = logged_runs(default_uri(oof), "level2")
    assert logged.info.run_name == "b" and "cite.nested" in logged.data.metrics

    result = run_cli("level1", write(tmp_path / "bad", "ridge", tracking="wandb", **RIDGE), "--data", tiny_prepared)
    assert result.returncode == 2 and "tracking" in result.stderr and "Traceback" not in result.stderr


def test_a_multiome_blend_logs_its_cis_gain(tiny_prepared, tmp_path, monkeypatch):
    oof = tmp_path / "oof"
    for name, alpha in (("multi_ridge_a", 10.0), ("multi_ridge_b", 1000.0)):
        config = {**RIDGE, "task": "multi", "name": name, "params": {"alpha": alpha}}
        run_level1(
            {**config, "features": {"svd_components": 16, "target_svd_components": 8}}, tiny_prepared, oof_root=oof
        )
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    monkeypatch.setenv(tracking.ENV, uri)
    cis = {"peaks_per_gene": 2, "alpha": 100.0}
    config = {"name": "c", "method": "greedy", "runs": {"multi": ["multi_ridge_*"]}, "nested_trials": 10, "cis": cis}
    blend = run_level2(config, tiny_prepared, oof_root=oof)
    [run] = logged_runs(uri, tracking.LEVEL2_EXPERIMENT)
    assert run.data.metrics["multi.cis_gain"] == pytest.approx(blend.tasks["multi"].cis["gain"])
    assert run.data.params["cis.peaks_per_gene"] == "2"
