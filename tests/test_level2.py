"""Level-2: blend objective, methods, nested score, refusals, and validated submissions."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from conftest import run_cli
from mmscel.blend.methods import BLEND_METHODS, fit_weights, optuna_weights
from mmscel.blend.objective import blend_components, component_statistics, dense_statistics, standardize_rows
from mmscel.blend.run import run_level2
from mmscel.blend.submit import submit
from mmscel.data.load import load
from mmscel.errors import InputError
from mmscel.level1 import run_level1
from mmscel.metrics import pearson_per_row
from mmscel.scoring import score_submission
from mmscel.store import RunStore
from mmscel.targets import TargetBasis


def _runs(n=400, d=60, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, d))
    predictions = [truth + rng.normal(scale=s, size=(n, d)) for s in (0.7, 1.0, 2.0)] + [rng.normal(size=(n, d))]
    return truth, predictions


def test_per_cell_standardisation():
    values = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    z = standardize_rows(values)
    np.testing.assert_allclose(z[0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(), 1, atol=1e-12)
    assert (z[1] == 0).all()


def test_dense_objective_equals_the_metric_of_the_blend():
    truth, predictions = _runs()
    stats = dense_statistics(predictions, truth)
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    blend = sum(w * standardize_rows(p) for w, p in zip(weights, predictions))
    np.testing.assert_allclose(stats.per_cell(weights), pearson_per_row(truth, blend), atol=1e-12)


def test_component_space_metric_equals_the_naive_reconstruction():
    rng = np.random.default_rng(1)
    n, genes, k = 200, 500, 16
    V = rng.normal(size=(k, genes)).astype(np.float32)
    truth = np.maximum(rng.normal(size=(n, k)) @ V / 4 + rng.normal(size=(n, genes)), 0).astype(np.float32)
    coefficients = [
        (truth @ V.T / genes + rng.normal(scale=s, size=(n, k))).astype(np.float32) for s in (0.05, 0.2, 1.0)
    ]
    basis = TargetBasis(V, np.zeros(genes, np.float32))
    stats = component_statistics(coefficients, sp.csr_matrix(truth), basis)
    for weights in (np.array([1.0, 0, 0]), np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.1, 0.8])):
        naive = pearson_per_row(truth, sum(w * standardize_rows(c @ V) for w, c in zip(weights, coefficients)))
        np.testing.assert_allclose(stats.per_cell(weights), naive, atol=1e-6)
        reconstructed = blend_components(coefficients, basis, weights) @ V
        np.testing.assert_allclose(pearson_per_row(truth, reconstructed), naive, atol=1e-5)


def test_nested_scores_leave_cells_of_no_fold_unscored():
    from mmscel.blend.run import nested_per_cell

    truth, predictions = _runs()
    folds = np.tile([0, 1, 2, -1], len(truth) // 4)
    scores = nested_per_cell(dense_statistics(predictions, truth), folds, "greedy", greedy_steps=5)
    assert np.isnan(scores[folds == -1]).all() and np.isfinite(scores[folds >= 0]).all()


@pytest.mark.parametrize("method", BLEND_METHODS.names())
def test_every_blend_method_beats_equal_weights_or_matches(method, tmp_path):
    truth, predictions = _runs()
    stats = dense_statistics(predictions, truth)
    weights = fit_weights(method, stats, n_trials=40, storage=tmp_path / "study.journal")
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    assert stats.score(weights) >= stats.score(np.full(4, 0.25)) - 1e-9
    if method != "equal":
        assert weights[3] < 0.05  # the noise run gets (almost) no weight
        assert stats.score(weights) > max(stats.score(np.eye(4)[i]) for i in range(4))


def test_optuna_reaches_greedy_and_slsqp_and_resumes(tmp_path):
    truth, predictions = _runs(seed=3)
    stats = dense_statistics(predictions, truth)
    best_other = max(stats.score(fit_weights(m, stats)) for m in ("greedy", "slsqp"))
    weights, study = optuna_weights(stats, n_trials=130, seed=0, storage=tmp_path / "study.journal")
    assert stats.score(weights) >= best_other - 1e-4
    _, resumed = optuna_weights(stats, n_trials=145, seed=0, storage=tmp_path / "study.journal")
    assert len(resumed.trials) == 145  # the stored study was extended, not restarted
    assert [t.params for t in resumed.trials[:130]] == [t.params for t in study.trials]
    assert "cma:optimizer" not in (tmp_path / "study.journal").read_text()  # Optuna pickles it: never stored
    fewer = stats.__class__(stats.gram[:, :3, :3], stats.cross[:, :3])
    weights, other = optuna_weights(fewer, n_trials=20, seed=0, storage=tmp_path / "study.journal")
    assert len(weights) == 3 and len(other.trials) == 20  # trials of another set of runs are not reused


FAST = {
    "ridge": {"alpha": 10.0},
    "lgbm": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15, "early_stopping_rounds": 10},
}


@pytest.fixture(scope="module")
def oof_with_runs(tiny_prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("level2")
    configs = root / "configs"
    configs.mkdir()
    for task, features in (
        ("cite", {"svd_components": 24}),
        ("multi", {"svd_components": 24, "target_svd_components": 12}),
    ):
        for learner, params in FAST.items():
            fields = {"task": task, "learner": learner, "params": params, "features": features, "n_jobs": 1}
            if task == "cite" and learner == "lgbm":
                fields["targets"] = {"space": "svd", "components": 8}
            path = configs / f"{task}_{learner}.yaml"
            path.write_text(yaml.safe_dump(fields))
            run_level1(path, tiny_prepared, oof_root=root / "oof")
    return root / "oof"


def _blend_config(tmp_path, **fields):
    path = tmp_path / "blend.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "method": "greedy", "n_trials": 20, "nested_trials": 10, **fields}))
    return path


def test_level2_nested_score_and_a_submission_that_passes_validation(tiny_prepared, oof_with_runs, tmp_path):
    oof = tmp_path / "oof"
    shutil.copytree(oof_with_runs, oof)
    blend = run_level2(_blend_config(tmp_path, method="optuna", n_trials=30), tiny_prepared, oof_root=oof)
    for task in ("cite", "multi"):
        info = blend.tasks[task]
        assert info.nested <= info.in_sample + 1e-9
        assert info.nested > info.best_single["score"] - 0.02
        assert info.last_day is not None and sum(info.weights) == pytest.approx(1.0)
        assert set(info.fingerprints) == set(info.runs)
    run_manifest = json.loads((oof / "multi" / "multi_ridge" / "manifest.json").read_text())
    assert not Path(run_manifest["fold_file"]).is_absolute()  # files are named relative to the oof root,
    assert not Path(run_manifest["target_space"]["components_file"]).is_absolute()
    moved = tmp_path / "elsewhere" / "store"
    shutil.copytree(oof, moved)  # ... so a store that moved still blends, from any working folder
    result = run_cli(
        "level2", _blend_config(tmp_path, method="greedy"), "--data", tiny_prepared, "--oof", "store", cwd=moved.parent
    )
    assert result.returncode == 0, result.stderr
    studies = sorted(p.name for p in (oof / "blend" / "b").glob("study-*.journal"))
    assert len(studies) == 2  # one Optuna study per task, named after its inputs
    again = run_level2(_blend_config(tmp_path, method="optuna", n_trials=30), tiny_prepared, oof_root=oof)
    assert sorted(p.name for p in (oof / "blend" / "b").glob("study-*.journal")) == studies
    assert again.tasks["cite"].weights == blend.tasks["cite"].weights
    record = submit(tiny_prepared, None, oof, None)
    sample = pd.read_csv(tiny_prepared / "sample_submission.csv")
    written = pd.read_csv(record["file"])
    assert list(written.columns) == ["row_id", "target"] and (written["row_id"] == sample["row_id"]).all()
    assert "kaggle competitions submit -c open-problems-multimodal" in record["kaggle"]
    scores, truth = score_submission(record["file"], tiny_prepared)
    for task in ("cite", "multi"):
        assert scores.by_task[task]["private"] > truth["mean_profile"][task]["private"]
    board = run_cli("leaderboard", "--data", tiny_prepared, "--oof", oof)
    assert board.returncode == 0, board.stderr
    assert "cite_lgbm" in board.stdout and "blend (optuna)" in board.stdout and "oracle" in board.stdout
    saved = json.loads((oof / "submissions" / "b.json").read_text())
    assert saved["blend"] == "b" and saved["runs"]["cite"] == ["cite_lgbm", "cite_ridge"]


def test_weights_from_the_last_day_fit_the_runs_holdout_predictions(tiny_prepared, oof_with_runs, tmp_path):
    from mmscel.blend.inputs import load_runs
    from mmscel.blend.run import cell_statistics
    from mmscel.data.load import load
    from mmscel.store import RunStore

    oof = tmp_path / "oof"
    shutil.copytree(oof_with_runs, oof)
    blend = run_level2(_blend_config(tmp_path, weights_from="last_day"), tiny_prepared, oof_root=oof)
    info = blend.tasks["cite"]
    runs = load_runs(RunStore(oof), "cite", info.runs)
    train = load("cite", "train", tiny_prepared, inputs=False)
    last = np.flatnonzero(train.metadata["day"].to_numpy() == train.metadata["day"].max())
    holdout = cell_statistics([r.last_day for r in runs], train.targets[last], None)
    expected = fit_weights("greedy", holdout, greedy_steps=25)
    np.testing.assert_allclose(info.weights, expected)
    assert info.n_cells == len(last) and info.in_sample == pytest.approx(holdout.score(expected))
    assert info.last_day == info.nested <= info.in_sample + 1e-9
    plain = run_level2(_blend_config(tmp_path, name="plain"), tiny_prepared, oof_root=oof)
    assert plain.tasks["cite"].n_cells == train.n_cells != info.n_cells
    result = run_cli("level2", _blend_config(tmp_path, weights_from="later"), "--data", tiny_prepared, "--oof", oof)
    assert result.returncode == 2 and "weights_from" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_single_run_submission_fills_the_other_task(tiny_prepared, oof_with_runs, tmp_path):
    result = run_cli(
        "submit",
        "--data",
        tiny_prepared,
        "--oof",
        oof_with_runs,
        "--run",
        "cite/cite_ridge",
        "--out",
        tmp_path / "s.csv",
    )
    assert result.returncode == 0, result.stderr
    assert "mean profile" in result.stdout and "kaggle competitions submit" in result.stdout


def test_runs_from_different_folds_or_data_are_refused(tiny_prepared, oof_with_runs, tmp_path):
    oof = tmp_path / "oof"
    shutil.copytree(oof_with_runs, oof)
    manifest_path = oof / "cite" / "cite_ridge" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fold_fingerprint"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="cite_lgbm and cite_ridge.*different fold"):
        run_level2(_blend_config(tmp_path), tiny_prepared, oof_root=oof)
    manifest["fold_fingerprint"] = json.loads((oof / "cite" / "cite_lgbm" / "manifest.json").read_text())[
        "fold_fingerprint"
    ]
    manifest["data_fingerprint"] = "f" * 16
    manifest_path.write_text(json.dumps(manifest))
    result = run_cli("level2", _blend_config(tmp_path), "--data", tiny_prepared, "--oof", oof)
    assert result.returncode == 2 and "different data" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for other in (oof / "cite" / "cite_lgbm" / "manifest.json", manifest_path):  # both runs now from "other" data
        other_manifest = json.loads(other.read_text())
        other_manifest["data_fingerprint"] = "f" * 16
        other.write_text(json.dumps(other_manifest))
    result = run_cli("level2", _blend_config(tmp_path), "--data", tiny_prepared, "--oof", oof)
    assert (
        result.returncode == 2 and "other data than" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    )
    result = run_cli("submit", "--run", "cite/cite_ridge", "--data", tiny_prepared, "--oof", oof)
    assert result.returncode == 2 and "run cite/cite_ridge: was made from other data" in result.stderr
    result = run_cli("leaderboard", "--data", tiny_prepared, "--oof", oof)
    assert (
        result.returncode == 2
        and "was made from other data" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_blend_config_errors_and_missing_runs(tiny_prepared, oof_with_runs, tmp_path):
    result = run_cli("level2", _blend_config(tmp_path, methd="x"), "--data", tiny_prepared, "--oof", oof_with_runs)
    assert result.returncode == 2 and "methd" in result.stderr
    result = run_cli(
        "level2", _blend_config(tmp_path, runs={"cite": ["nothing_*"]}), "--data", tiny_prepared, "--oof", oof_with_runs
    )
    assert result.returncode == 2 and "nothing_*" in result.stderr and "cite_ridge" in result.stderr


@pytest.mark.parametrize("damage", ["missing_row", "nan", "constant_cell", "wrong_order"])
def test_invalid_submissions_are_rejected(tiny_prepared, tmp_path, damage):
    from mmscel.submission import cell_starts, evaluation_rows, mean_profile_values, write_submission

    rows = evaluation_rows(tiny_prepared)
    values = mean_profile_values(tiny_prepared) + np.random.default_rng(0).normal(scale=0.01, size=rows.n_rows).astype(
        np.float32
    )
    path = tmp_path / "s.csv"
    if damage in ("nan", "constant_cell"):
        if damage == "nan":
            values[7] = np.nan
        else:
            starts = cell_starts(rows)
            values[starts[3] : starts[4]] = 1.0
        with pytest.raises(InputError, match="s.csv"):
            write_submission(path, values, cell_starts(rows))
        assert not path.exists()
        return
    write_submission(path, values, cell_starts(rows))
    frame = pd.read_csv(path)
    frame = frame.iloc[:-1] if damage == "missing_row" else frame.iloc[[1, 0] + list(range(2, len(frame)))]
    frame.to_csv(path, index=False)
    result = run_cli("score", path, "--data", tiny_prepared)
    assert result.returncode == 2 and "s.csv" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cis_correction_is_cross_fitted_and_reaches_submission_board_and_export(tiny_prepared, oof_with_runs, tmp_path):
    import anndata

    from mmscel.blend.submit import blend_predictions
    from mmscel.h5ad_export import export
    from mmscel.scoring import board
    from mmscel.submission import evaluation_rows

    oof = tmp_path / "oof"
    shutil.copytree(oof_with_runs, oof)
    plain = run_level2(_blend_config(tmp_path), tiny_prepared, oof_root=oof)
    cis = {"peaks_per_gene": 3, "alpha": 100.0, "selection_cells": 500, "fit_cells": 600}  # a draw of the cells
    blend = run_level2(_blend_config(tmp_path, name="c", cis=cis), tiny_prepared, oof_root=oof)
    info = blend.tasks["multi"].cis
    assert info["applied"] and info["gain"] == pytest.approx(info["nested_corrected"] - info["nested_base"])
    assert info["gain"] > 0 and info["folds"] == sorted(info["folds"]) and len(info["folds"]) >= 2
    assert blend.tasks["cite"].cis is None and plain.tasks["multi"].cis is None
    assert info["last_day_base"] == pytest.approx(blend.tasks["multi"].last_day, abs=1e-6)  # same weights, same cells
    assert np.isfinite(info["last_day_corrected"])
    assert blend.tasks["multi"].weights == plain.tasks["multi"].weights  # the weights do not depend on it

    record = submit(tiny_prepared, None, oof, tmp_path / "c.csv", blend="c")
    scores, _ = score_submission(record["file"], tiny_prepared)
    rows, _ = board(tiny_prepared, None, oof)
    listed = {(r["task"], r["name"]): r for r in rows}
    assert listed[("multi", "c")]["private"] == pytest.approx(scores.by_task["multi"]["private"], abs=1e-6)
    assert listed[("multi", "c")]["private"] != pytest.approx(listed[("multi", "b")]["private"], abs=1e-6)

    export(tmp_path / "c.h5ad", blend="c", task="multi", data_dir=tiny_prepared, oof_root=oof)
    X = anndata.read_h5ad(tmp_path / "c.h5ad").X
    evaluation = evaluation_rows(tiny_prepared)
    multi = ~evaluation.is_cite
    written = pd.read_csv(record["file"])["target"].to_numpy()[multi]
    np.testing.assert_allclose(X[evaluation.cell_code[multi], evaluation.target_code[multi]], written, atol=1e-4)
    predictions, _ = blend_predictions(RunStore(oof), "c", tiny_prepared)
    assert predictions["multi"][2] is not None and predictions["cite"][2] is None

    export(tmp_path / "c_oof.h5ad", blend="c", task="multi", split="oof", data_dir=tiny_prepared, oof_root=oof)
    exported = anndata.read_h5ad(tmp_path / "c_oof.h5ad")
    scored = np.isfinite(exported.X).all(axis=1)  # each cell corrected by the map fitted without its fold
    truth = load("multi", "train", tiny_prepared, inputs=False).targets[scored].toarray()
    assert pearson_per_row(truth, exported.X[scored]).mean() == pytest.approx(info["nested_corrected"], abs=1e-5)


def test_cis_settings_are_checked(tiny_prepared, oof_with_runs, tmp_path):
    with pytest.raises(InputError, match="peaks_per_gene"):
        run_level2(_blend_config(tmp_path, cis={"peaks_per_gene": 0}), tiny_prepared, oof_root=oof_with_runs)
    with pytest.raises(InputError, match="cis"):
        run_level2(_blend_config(tmp_path, cis={"peak": 3}), tiny_prepared, oof_root=oof_with_runs)
    with pytest.raises(InputError, match="fit_cells"):
        run_level2(_blend_config(tmp_path, cis={"fit_cells": 10}), tiny_prepared, oof_root=oof_with_runs)
