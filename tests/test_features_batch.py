"""Feature options: batch context (median-expression SVD, cell-type composition), imputed input SVD, row-median ATAC."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmscel.config import validate_run_config
from mmscel.errors import InputError
from mmscel.features import (
    FEATURE_CONFIGS,
    BlockContext,
    CiteFeatures,
    MultiFeatures,
    build_features,
    compute,
    compute_blocks,
    impute,
)
from mmscel.features import batches as batches_module
from mmscel.features.batches import batch_means, batch_svd, column_nonzero_medians, predicted_cell_types
from mmscel.features.compute import transform
from mmscel.features.impute import SparsePlusLowRank, imputed_svd, randomized_svd
from mmscel.targets import batch_labels

OLD_KEYS = {
    "cite": ["svd_components", "protein_genes", "top_correlated_genes", "batch_centering", "cell_stats", "donor_sex"],
    "multi": [
        "svd_components",
        "transforms",
        "binary_svd_components",
        "target_svd_components",
        "cell_stats",
        "chromosome_ratios",
        "donor_sex",
        "batch_centering",
    ],
}
OPTIONS = {
    "cite": {
        "batch_svd_components": 3,
        "batch_cell_types": True,
        "impute_components": 4,
        "impute_iterations": 2,
        "day": True,
    },
    "multi": {
        "transforms": ["row_median", "log1p"],
        "batch_svd_components": 3,
        "batch_cell_types": True,
        "target_clip_quantile": 0.01,
        "target_median_normalize": True,
        "target_impute_components": 4,
        "day": True,
    },
}


def _matrix(n=120, d=40, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(n, d, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    m.data = rng.gamma(2.0, 1.0, m.nnz).astype(np.float32)
    return m


def _metadata(n, seed=0):
    rng = np.random.default_rng(seed)
    types = np.array(["HSC", "EryP", "NeuP"])[rng.integers(0, 3, n)]
    return pd.DataFrame({"donor": rng.choice([1, 2], n), "day": rng.choice([2, 3], n), "cell_type": types})


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_default_feature_configs_dump_as_before(task):
    assert list(FEATURE_CONFIGS[task]().model_dump()) == OLD_KEYS[task]
    dump = FEATURE_CONFIGS[task](**OPTIONS[task]).model_dump()
    assert all(dump[key] == value for key, value in OPTIONS[task].items())


@pytest.mark.parametrize(
    ("task", "features", "key"),
    [
        ("cite", {"batch_svd_components": -1}, "features.batch_svd_components"),
        ("cite", {"batch_cell_types": "some"}, "features.batch_cell_types"),
        ("cite", {"impute_components": 5000}, "features.impute_components"),
        ("cite", {"impute_iterations": 0}, "features.impute_iterations"),
        ("multi", {"transforms": ["quantile"]}, "features.transforms.0"),
        ("multi", {"target_clip_quantile": 0.5}, "features.target_clip_quantile"),
        ("multi", {"target_median_normalize": 3}, "features.target_median_normalize"),
        ("multi", {"target_impute_components": -1}, "features.target_impute_components"),
        ("multi", {"day": "later"}, "features.day"),
    ],
)
def test_a_bad_feature_option_is_one_line_naming_its_key(task, features, key):
    with pytest.raises(InputError) as caught:
        validate_run_config({"name": "x", "task": task, "learner": "ridge", "features": features})
    assert f"'{key}'" in str(caught.value) and "\n" not in str(caught.value)


def test_the_imputation_is_a_citeseq_option():
    with pytest.raises(InputError, match="unknown key 'features.impute_components'"):
        validate_run_config({"name": "x", "task": "multi", "learner": "ridge", "features": {"impute_components": 2}})


def test_row_median_transform_divides_rows_by_their_stored_median(monkeypatch):
    whole = compute.row_blocks
    monkeypatch.setattr(compute, "row_blocks", lambda m, max_nnz=2**24: whole(m, 40))
    m = _matrix()
    dense = m.toarray()
    medians = np.nanmedian(np.where(dense != 0, dense, np.nan), axis=1)
    out = transform(m, ["row_median"])
    np.testing.assert_allclose(out.toarray(), dense / medians[:, None], rtol=1e-6)
    assert out.nnz == m.nnz and out.dtype == np.float32
    np.testing.assert_array_equal(m.toarray(), dense)


def test_column_medians_of_nonzeros_in_blocks(monkeypatch):
    monkeypatch.setattr(batches_module, "COLUMN_NNZ", 25)
    dense = _matrix().toarray()
    dense[:, 7] = 0
    m = sp.csr_matrix(dense)
    stored = np.where(dense != 0, dense, np.nan)
    expected = np.array([np.median(col[np.isfinite(col)]) if np.isfinite(col).any() else 0.0 for col in stored.T])
    np.testing.assert_allclose(column_nonzero_medians(m.tocsc()), expected, rtol=1e-6)


def test_batch_svd_gives_each_batch_one_row():
    m, meta = _matrix(), _metadata(120)
    batches = batch_labels(meta)
    values = batch_svd(m, batches, 8, seed=0)
    assert values.shape == (120, 3) and values.dtype == np.float32  # capped at batches - 1
    for label in np.unique(batches):
        assert len(np.unique(values[batches == label], axis=0)) == 1
    np.testing.assert_array_equal(values, batch_svd(m, batches, 8, seed=0))


def test_cell_types_are_predicted_for_every_cell_from_the_training_cells():
    rng = np.random.default_rng(0)
    meta = _metadata(150)
    scores = rng.normal(size=(150, 5)) + (meta["cell_type"] == "EryP").to_numpy()[:, None] * 3
    cell_types = meta["cell_type"].where(np.arange(150) < 100, "hidden")
    names, probabilities = predicted_cell_types(scores, cell_types, 100, seed=0)
    assert list(names) == ["EryP", "HSC", "NeuP"] and probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    means = batch_means(probabilities, batch_labels(meta))
    assert means.shape == (150, 3) and len(np.unique(means, axis=0)) == len(np.unique(batch_labels(meta)))
    with pytest.raises(InputError, match="features.batch_cell_types"):
        predicted_cell_types(scores, pd.Series(["hidden"] * 150), 100, seed=0)


def test_the_imputed_svd_matches_a_dense_imputation(monkeypatch):
    monkeypatch.setattr(impute, "PRODUCT_NNZ", 64)  # many row blocks
    m = _matrix(150, 30)
    dense = m.toarray().astype(np.float64)
    filled = dense
    for _ in range(2):
        v = np.linalg.svd(filled, full_matrices=False)[2][:4]
        filled = np.where(dense != 0, dense, (filled @ v.T) @ v)
    centred = filled - filled.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    scores, components = imputed_svd(m.copy(), 5, 4, 2, seed=0)
    assert scores.shape == (150, 5) and components.shape == (5, 30) and scores.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(scores, axis=0), s[:5], rtol=2e-2)
    assert (np.abs(np.sum(components[:3] * vt[:3], axis=1)) > 0.99).all()
    again = imputed_svd(m.copy(), 5, 4, 2, seed=0)
    np.testing.assert_array_equal(scores, again[0])


def test_the_uncentred_imputed_svd_is_the_plain_svd_of_the_filled_matrix():
    m = _matrix(150, 30, seed=2)
    dense = m.toarray().astype(np.float64)
    v = np.linalg.svd(dense, full_matrices=False)[2][:4]
    filled = np.where(dense != 0, dense, (dense @ v.T) @ v)
    s = np.linalg.svd(filled, compute_uv=False)
    scores, components = imputed_svd(m.copy(), 5, 4, 1, seed=0, centred=False)
    np.testing.assert_allclose(np.linalg.norm(scores, axis=0), s[:5], rtol=2e-2)
    np.testing.assert_allclose(scores, filled @ components.T.astype(np.float64), atol=5e-2 * s[0])
    assert np.abs(filled.mean(axis=0)).max() > 0.1  # the filled columns are not centred: their means stay in


def test_randomized_svd_of_a_plain_sparse_matrix():
    m = _matrix(80, 20)
    n, d = m.shape
    parts = np.zeros((n, 0), np.float32), np.zeros((0, d), np.float32), np.zeros(d, np.float32)
    scores, components = randomized_svd(SparsePlusLowRank(m, *parts), 4, seed=0)
    s = np.linalg.svd(m.toarray(), compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(scores, axis=0), s[:4], rtol=1e-3)
    np.testing.assert_allclose(scores, m.toarray() @ components.T, atol=2e-2)  # scores are the projections
    np.testing.assert_allclose(components @ components.T, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_batch_blocks_give_one_row_per_cell(task):
    inputs = _matrix(60, 40, seed=3)
    names = np.array([f"chr{i % 3 + 1}:{i}-{i + 5}" if task == "multi" else f"ENSG{i}_CD{i}" for i in range(40)])
    train = type("Train", (), {"n_cells": 40, "input_names": names, "target_names": np.array(["CD1", "CD2"])})()
    config = FEATURE_CONFIGS[task](svd_components=4, batch_svd_components=2, batch_cell_types=True)
    meta = _metadata(60)
    meta.loc[40:, "cell_type"] = "hidden"
    blocks = compute_blocks(config, BlockContext(inputs, train, meta, config, seed=0))
    columns = [name for names, _ in blocks for name in names]
    assert columns[0] == "svd_0"
    assert columns[-4:] == ["batch_svd_1", "batch_type:EryP", "batch_type:HSC", "batch_type:NeuP"]
    assert all(values.shape[0] == 60 for _, values in blocks)


def _same_features(a, b):
    return a.fingerprint == b.fingerprint and np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_options_at_their_defaults_change_no_feature_and_others_a_new_cache(task, tiny_prepared, tmp_path):
    small = {"svd_components": 8, "target_svd_components": 8} if task == "multi" else {"svd_components": 8}
    defaults = {key: FEATURE_CONFIGS[task].model_fields[key].default for key in OPTIONS[task]}
    plain = build_features(task, small, tiny_prepared, store=tmp_path, seed=0)
    explicit = build_features(task, {**small, **defaults}, tiny_prepared, store=tmp_path / "other", seed=0)
    assert _same_features(plain, explicit)
    options = build_features(task, {**small, **OPTIONS[task]}, tiny_prepared, store=tmp_path, seed=0)
    assert options.fingerprint != plain.fingerprint and options.folder != plain.folder
    assert options.train.shape[0] == plain.train.shape[0] and options.train.dtype == np.float32
    assert np.isfinite(options.train).all() and np.isfinite(options.test).all()
    assert sum(name.startswith("batch_") for name in options.columns) >= 3
    again = build_features(task, {**small, **OPTIONS[task]}, tiny_prepared, store=tmp_path / "again", seed=0)
    assert _same_features(options, again)
    if task == "multi":
        assert not np.array_equal(options.target_space.components, plain.target_space.components)
        np.testing.assert_array_equal(options.target_space.embedding, again.target_space.embedding)
        assert options.target_space.embedding.shape == plain.target_space.embedding.shape


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_the_day_column_is_each_cells_day(task, tiny_prepared, tmp_path):
    from mmscel.data.load import load

    small = {"svd_components": 8, "target_svd_components": 8} if task == "multi" else {"svd_components": 8}
    plain = build_features(task, small, tiny_prepared, store=tmp_path, seed=0)
    with_day = build_features(task, {**small, "day": True}, tiny_prepared, store=tmp_path, seed=0)
    assert with_day.columns == [*plain.columns[: with_day.columns.index("day")], "day"]
    splits = [load(task, split, tiny_prepared, inputs=False, targets=False) for split in ("train", "test")]
    days = [split.metadata["day"].to_numpy() for split in splits]
    np.testing.assert_array_equal(with_day.train[:, -1], days[0])
    np.testing.assert_array_equal(with_day.test[:, -1], days[1])
    np.testing.assert_array_equal(with_day.train[:, :-1], plain.train)


def test_cite_and_multi_feature_models_know_their_blocks():
    assert CiteFeatures.blocks[-2:] == MultiFeatures.blocks[-2:] == ("batch_svd", "batch_cell_types")


@pytest.mark.parametrize("task", list(FEATURE_CONFIGS))
def test_the_input_svd_is_capped_at_one_component_per_cells_per_component(task, tiny_prepared, tmp_path, caplog):
    base = {"svd_components": 64, "target_svd_components": 8} if task == "multi" else {"svd_components": 64}
    plain = build_features(task, base, tiny_prepared, store=tmp_path, seed=0)
    cells = plain.train.shape[0] + plain.test.shape[0]
    loose = build_features(task, {**base, "cells_per_component": cells // 100}, tiny_prepared, store=tmp_path, seed=0)
    assert _svd_columns(loose) == _svd_columns(plain) == 64  # the cap (about 100) is above 64: as without it
    assert np.array_equal(loose.train, plain.train) and loose.fingerprint != plain.fingerprint
    with caplog.at_level("INFO", logger="mmscel.features.blocks"):
        capped = build_features(task, {**base, "cells_per_component": 40}, tiny_prepared, store=tmp_path, seed=0)
    assert _svd_columns(capped) == cells // 40 < 64
    assert f"input SVD: {cells // 40} components ({cells:,} cells / 40), not 64" in caplog.messages
    assert capped.train.shape[1] == plain.train.shape[1] - (64 - cells // 40)  # the other blocks as they were


def _svd_columns(features) -> int:
    return sum(name.startswith("svd_") for name in features.columns)
