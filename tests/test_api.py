"""The Python API: cross_validate on arrays, level-1 built on it, a toy learner through the demo's path,
the leaderboard as a DataFrame and predictions by cell id."""

from pathlib import Path

import numpy as np
import pytest
import yaml

import mmscel
from mmscel.cv import Split, cross_validate
from mmscel.learners import LEARNERS, make_learner
from mmscel.learners.base import BaseLearner, FitData, LearnerParams, as_float32
from mmscel.store import RunStore, load_array
from mmscel.targets import GeneSVD, NativeTargets, ProteinSVD

FEATURES = {"cite": {"svd_components": 16}, "multi": {"svd_components": 16, "target_svd_components": 8}}


def linear_data(n=240, d=12, t=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (X @ rng.normal(size=(d, t)) + 0.3 * rng.normal(size=(n, t))).astype(np.float32)
    return X, Y


def test_cross_validate_on_arrays_matches_fitting_each_fold_by_hand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, Y = linear_data()
    labels = np.repeat(np.arange(4), 60)
    learner = make_learner("ridge", {"alpha": 1.0}, seed=3)
    result = cross_validate(learner, X, Y, labels, X_test=X[:10])
    assert list(tmp_path.iterdir()) == []  # in memory: nothing written
    for k in range(4):
        train, valid = labels != k, labels == k
        by_hand = make_learner("ridge", {"alpha": 1.0}, seed=3 + k).fit(FitData(X[train], Y[train]))
        np.testing.assert_array_equal(result.oof[valid], by_hand.predict(X[valid]))
    assert result.validated_rows == len(X) and 0.9 < result.cv <= 1.0
    assert result.test.shape == (10, Y.shape[1]) and result.cv_mean_profile < result.cv


def test_cross_validate_takes_pairs_and_holdouts_and_reports_each_fold():
    X, Y = linear_data()
    seen = []
    splits = [
        Split("a", np.arange(120, 240), np.arange(120)),
        Split("b", np.arange(120), np.arange(120, 240)),
        Split("late", np.arange(200), np.arange(200, 240), role="holdout", predict_test=False),
    ]
    result = cross_validate(
        make_learner("ridge", {}), X, Y, splits, X_test=X[:5], callbacks=[lambda r, done: seen.append(r.name)]
    )
    assert seen == ["a", "b", "late"] and result.cv_folds == ["a", "b"]
    assert result.folds["late"].test.shape == (0, Y.shape[1]) and result.folds["late"].score > 0.9
    pairs = cross_validate(make_learner("ridge", {}), X, Y, [(s.train, s.valid) for s in splits[:2]])
    np.testing.assert_array_equal(pairs.oof, result.oof)
    with pytest.raises(ValueError, match="validate no row"):
        cross_validate(make_learner("ridge", {}), X, Y, splits[2:])


@pytest.mark.parametrize("space", [NativeTargets(), NativeTargets(standardize_cells=True), ProteinSVD(6)])
def test_target_spaces_round_trip_and_score(space):
    X, Y = linear_data()
    result = cross_validate(make_learner("ridge", {}), X, Y, np.repeat(np.arange(3), 80), space=space)
    assert result.oof.shape == Y.shape and result.cv > 0.8
    fitted = space.clone().fit(Y)
    if isinstance(space, ProteinSVD):  # the leading directions carry the signal
        assert fitted.transform(Y).shape == (len(Y), 6)
    else:
        np.testing.assert_allclose(fitted.inverse(fitted.transform(Y)), fitted.transform(Y))


def test_gene_svd_keeps_the_fit_coefficients_and_projects_new_rows():
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    Y = sp.random(300, 80, density=0.2, format="csr", dtype=np.float32, random_state=2)
    space = GeneSVD(10, seed=0).fit(Y)
    np.testing.assert_array_equal(space.transform(Y), space.embedding)  # as fit_transform
    other = Y[rng.permutation(300)]
    projected = space.transform(other)
    np.testing.assert_allclose(projected, other @ space.components.T, rtol=1e-4, atol=1e-5)
    assert space.with_fitted(4).transform(Y).shape == (300, 4)
    assert space.inverse(np.ones((2, 4), np.float32)).shape == (2, 10)
    scores = space.score(space.embedding[:5], Y, np.arange(5))
    assert scores.shape == (5,) and (scores > 0.3).all()


def test_level1_is_cross_validate_with_files_on_top(tiny_prepared, tmp_path):
    config = tmp_path / "cite_ridge.yaml"
    config.write_text(yaml.safe_dump({"task": "cite", "learner": "ridge", "features": FEATURES["cite"], "n_jobs": 1}))
    run = mmscel.run_level1(config, tiny_prepared, oof_root=tmp_path / "oof")
    features = mmscel.build_features("cite", FEATURES["cite"], tiny_prepared, store=tmp_path / "oof")
    train = mmscel.load("cite", "train", tiny_prepared, inputs=False)
    labels = run.record.store.fold_file("cite", "auto")
    import pandas as pd

    folds = pd.read_parquet(labels)["fold"].to_numpy()
    learner = make_learner("ridge", run.manifest["config"]["params"], seed=0, n_jobs=1)
    memory = cross_validate(learner, features.train, np.asarray(train.targets, np.float32), folds, features.test)
    np.testing.assert_array_equal(memory.oof, load_array(run.run_dir / "oof.npy"))
    np.testing.assert_array_equal(memory.test, load_array(run.run_dir / "test.npy"))
    assert memory.cv == run.record.cv


class LeastSquares(BaseLearner):
    """A toy learner: least squares with a small ridge, kept as .npz."""

    name = "toy"
    Params = LearnerParams
    library = "numpy"

    def fit(self, train, valid=None, basis=None):
        X = np.hstack([as_float32(train.X), np.ones((len(train.X), 1), np.float32)])
        self.weights_ = np.linalg.solve(X.T @ X + np.eye(X.shape[1]), X.T @ train.Y).astype(np.float32)
        return self

    def predict(self, X):
        return (np.hstack([as_float32(X), np.ones((len(X), 1), np.float32)]) @ self.weights_).astype(np.float32)

    def save(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.savez(Path(folder) / "toy.npz", weights=self.weights_)
        return [Path(folder) / "toy.npz"]

    def load(self, folder):
        with np.load(Path(folder) / "toy.npz", allow_pickle=False) as stored:
            self.weights_ = stored["weights"]
        return self


@pytest.fixture
def toy_learner():
    LEARNERS.register("toy", LeastSquares)
    yield "toy"
    LEARNERS.unregister("toy")


def test_a_registered_learner_runs_the_demo_path(tiny_prepared, tmp_path, toy_learner):
    """One registry line: configs accept it, level-1 runs it, level-2 blends it, it is submitted and scored."""
    oof = tmp_path / "oof"
    for task in ("cite", "multi"):
        for learner in (toy_learner, "ridge"):
            path = tmp_path / task / f"{learner}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(yaml.safe_dump({"learner": learner, "task": task, "features": FEATURES[task], "n_jobs": 1}))
            record = mmscel.run_level1(path, tiny_prepared, oof_root=oof).record
            assert record.name == f"{task}_{learner}" and record.cv > record.cv_mean_profile
    assert RunStore(oof).run("cite", "cite_toy").manifest["libraries"]["numpy"] == np.__version__
    blend_config = tmp_path / "blend.yaml"
    blend_config.write_text(yaml.safe_dump({"name": "with_toy", "method": "greedy", "nested_trials": 5}))
    blend = mmscel.run_level2(blend_config, tiny_prepared, oof_root=oof)
    assert set(blend.tasks["cite"].runs) == {"cite_toy", "cite_ridge"}
    record = mmscel.submit(tiny_prepared, oof_root=oof)
    assert record["blend"] == "with_toy" and Path(record["file"]).exists()
    board = mmscel.leaderboard(tiny_prepared, oof_root=oof)
    assert {"cite_toy", "multi_toy", "with_toy"} <= set(board["name"])
    assert list(board.columns) == ["task", "name", "kind", "cv", "last_day", "public", "private"]
    assert board["private"].notna().all()


def test_load_oof_by_cell_id_and_as_anndata(tiny_prepared, tmp_path):
    oof = tmp_path / "oof"
    config = tmp_path / "multi" / "ridge.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({"task": "multi", "learner": "ridge", "features": FEATURES["multi"]}))
    mmscel.run_level1(config, tiny_prepared, oof_root=oof)
    train = mmscel.load("multi", "train", tiny_prepared)
    frame = mmscel.load_oof("multi", "multi_ridge", oof, tiny_prepared)
    assert frame.shape == train.targets.shape and list(frame.index[:3]) == list(train.cell_ids[:3])
    assert list(frame.columns) == list(train.target_names)
    some = train.cell_ids[[5, 2]]
    subset = mmscel.load_oof("multi", "multi_ridge", oof, tiny_prepared, cells=some)
    np.testing.assert_array_equal(subset.to_numpy(), frame.loc[some].to_numpy())
    adata = mmscel.load_oof("multi", "multi_ridge", oof, tiny_prepared, split="test", as_anndata=True)
    assert adata.n_vars == len(train.target_names) and "donor" in adata.obs
    with pytest.raises(mmscel.api.InputError, match="not a train cell"):
        mmscel.load_oof("multi", "multi_ridge", oof, tiny_prepared, cells=["nope"])


def test_readme_python_example_runs(tiny_prepared, tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(tiny_prepared)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["checked"] is True
    assert (tmp_path / "oof" / "cite" / "cite_ridge" / "oof.npy").exists()
