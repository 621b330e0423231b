"""Seed bagging: a bag predicts its members' mean, round-trips through its files, and enters level-1 runs."""

from __future__ import annotations

import numpy as np
import yaml

from mmscel.config import RunConfig
from mmscel.learners.bag import SEED_STRIDE, SeedBag
from mmscel.learners.base import FitData
from mmscel.learners.mlp import MLPLearner
from mmscel.level1 import run_level1
from mmscel.store import digest, load_array

PARAMS = MLPLearner.Params(hidden=[32], epochs=8, batch_size=64, patience=3)


def _data(n=300, d=12, m=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (np.tanh(X @ rng.normal(size=(d, m))) + 0.1 * rng.normal(size=(n, m))).astype(np.float32)
    return X, Y


def test_bag_is_the_mean_of_differently_seeded_members(tmp_path):
    X, Y = _data()
    bag = SeedBag(MLPLearner, PARAMS, 3, seed=5, n_jobs=1).fit(
        FitData(X[:200], Y[:200]), FitData(X[200:250], Y[200:250])
    )
    assert [m.seed for m in bag.members] == [5, 5 + SEED_STRIDE, 5 + 2 * SEED_STRIDE]
    members = [m.predict(X[250:]) for m in bag.members]
    assert not np.allclose(members[0], members[1])  # the seeds matter
    np.testing.assert_allclose(bag.predict(X[250:]), np.mean(members, axis=0), rtol=1e-6, atol=1e-7)
    single = MLPLearner(PARAMS, seed=5, n_jobs=1).fit(FitData(X[:200], Y[:200]), FitData(X[200:250], Y[200:250]))
    np.testing.assert_array_equal(single.predict(X[250:]), members[0])  # member 0 is the unbagged learner
    files = bag.save(tmp_path / "model")
    assert {p.parent.name for p in files} == {"seed_0", "seed_1", "seed_2"}
    loaded = SeedBag(MLPLearner, PARAMS, 3, seed=5, n_jobs=1).load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X[250:]), bag.predict(X[250:]))
    assert len(bag.fit_info()["best_iterations"]) == 3


def test_old_configs_keep_their_hash_and_a_bag_changes_it():
    fields = {"name": "r", "task": "cite", "learner": "ridge", "params": {"alpha": 1.0}}
    plain = RunConfig(**fields)
    assert "seeds" not in plain.hashed() and plain.hashed() == {
        k: v for k, v in plain.model_dump().items() if k != "seeds"
    }
    assert digest(RunConfig(**fields, seeds=2).hashed()) != digest(plain.hashed())


def test_a_bagged_run_writes_every_member_and_resumes(tiny_prepared, tmp_path):
    config = {
        "task": "cite",
        "learner": "mlp",
        "params": {"hidden": [32], "epochs": 6, "patience": 3, "batch_size": 64},
        "features": {"svd_components": 16},
        "n_jobs": 1,
        "seeds": 2,
        "folds": {"scheme": "last_day"},
    }
    path = tmp_path / "bag.yaml"
    path.write_text(yaml.safe_dump({**config, "name": "cite_bag"}))
    first = run_level1(path, tiny_prepared, oof_root=tmp_path / "oof")
    manifest = first.manifest
    assert manifest["config"]["seeds"] == 2 and manifest["cv"] > manifest["cv_mean_profile"]
    fold = next(iter(manifest["folds"].values()))  # the one last-day fold
    assert len(fold["bag_seeds"]) == 2
    assert sorted(p.name for p in first.run_dir.rglob("seed_*") if p.is_dir()) == ["seed_0", "seed_1"]
    again = run_level1(path, tiny_prepared, oof_root=tmp_path / "oof")
    assert again.reused
    np.testing.assert_array_equal(load_array(again.run_dir / "oof.npy"), load_array(first.run_dir / "oof.npy"))
