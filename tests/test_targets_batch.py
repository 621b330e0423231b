"""Target options: per-batch median centring (fitted per fold, leak-free), clipping and median normalisation of rows."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmscel.config import RunConfig, Targets, validate_run_config
from mmscel.cv import cross_validate
from mmscel.errors import InputError
from mmscel.learners import make_learner
from mmscel.metrics import standardize_rows
from mmscel.targets import BatchCentredGenes, BatchOffsets, GeneSVD, NativeTargets, ProteinSVD, batch_labels
from mmscel.targets.rows import (
    clip_rows,
    clip_sparse_rows,
    median_normalize_sparse_rows,
    median_scale_rows,
    sparse_row_medians,
)


def _proteins(n=120, width=12, seed=0):
    rng = np.random.default_rng(seed)
    batches = np.array([f"d{d}_{day}" for d, day in zip(rng.integers(0, 2, n), rng.integers(2, 5, n), strict=True)])
    shift = {b: rng.normal(0, 2, width) for b in np.unique(batches)}
    Y = rng.gamma(2.0, 1.0, (n, width)) + np.stack([shift[b] for b in batches])
    return Y.astype(np.float32), batches


def test_default_targets_dump_as_before():
    assert list(Targets().model_dump()) == ["space", "components", "standardize_cells"]
    assert Targets(batch_centering=True).model_dump()["batch_centering"] is True
    config = RunConfig(name="x", task="cite", learner="ridge")
    assert config.hashed()["targets"] == {"space": "native", "components": 32, "standardize_cells": False}


@pytest.mark.parametrize(
    ("targets", "key"),
    [
        ({"batch_centering": "sometimes"}, "targets.batch_centering"),
        ({"clip_quantile": 0.5}, "targets.clip_quantile"),
        ({"clip_quantile": -0.01}, "targets.clip_quantile"),
        ({"median_normalize": "yes please"}, "targets.median_normalize"),
    ],
)
def test_a_bad_target_option_is_one_line_naming_its_key(targets, key):
    with pytest.raises(InputError) as caught:
        validate_run_config({"name": "x", "task": "cite", "learner": "ridge", "targets": targets})
    assert f"'{key}'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("key", ["clip_quantile", "median_normalize"])
def test_multiome_refuses_protein_row_options(key):
    config = RunConfig(name="x", task="multi", learner="ridge", targets={key: 0.01 if key == "clip_quantile" else True})
    with pytest.raises(InputError, match=f"targets.{key}: applies to CITEseq"):
        config.target_space(10, GeneSVD(4))


def test_batch_centering_needs_the_metadata():
    config = RunConfig(name="x", task="cite", learner="ridge", targets={"batch_centering": True})
    with pytest.raises(InputError, match="targets.batch_centering"):
        config.target_space(12)
    meta = pd.DataFrame({"donor": [1, 1, 2], "day": [2, 3, 2]})
    space = config.target_space(12, metadata=meta)
    assert space.per_fold and list(space.batches) == ["1_2", "1_3", "2_2"] == list(batch_labels(meta))


def test_defaults_leave_the_protein_spaces_as_they_were():
    Y, _ = _proteins()
    rows = np.arange(10, 100)
    z = standardize_rows(Y).astype(np.float32)
    native = NativeTargets(True).fit(Y)
    assert not native.per_fold
    np.testing.assert_array_equal(native.transform(Y), z)
    np.testing.assert_array_equal(native.transform_rows(Y, rows), z[rows])
    svd = ProteinSVD(5, True).fit_rows(Y, rows)
    mean = z[rows].mean(axis=0)
    vt = np.linalg.svd(z[rows] - mean, full_matrices=False)[2][:5].astype(np.float32)
    np.testing.assert_array_equal(svd.components, vt)
    coefficients = ((z[rows] - mean.astype(np.float32)) @ vt.T).astype(np.float32)
    np.testing.assert_array_equal(svd.transform_rows(Y, rows), coefficients)
    np.testing.assert_array_equal(svd.inverse(coefficients), (coefficients @ vt + mean.astype(np.float32)))
    assert svd.describe() == {
        "kind": "protein_svd",
        "n_targets": 12,
        "standardize_cells": True,
        "fit_components": 5,
        "output": "proteins",
    }


def test_batch_offsets_are_medians_and_their_mean():
    values = np.array([[1.0, 0], [3, 0], [5, 2], [10, 10], [20, 30]], np.float32)
    offsets = BatchOffsets.fit(values, np.array(["a", "a", "a", "b", "b"]))
    np.testing.assert_array_equal(offsets.medians, [[3, 0], [15, 20]])
    np.testing.assert_array_equal(offsets.typical, [9, 10])
    np.testing.assert_array_equal(offsets.of(np.array(["b", "z", "a"])), [[15, 20], [9, 10], [3, 0]])
    with pytest.raises(ValueError, match="batch labels"):
        BatchOffsets.fit(values, np.array(["a"]))


@pytest.mark.parametrize("space_cls", [NativeTargets, ProteinSVD])
def test_batch_centred_proteins_read_only_the_training_rows(space_cls):
    Y, batches = _proteins()
    rows = np.arange(0, 80)
    args = (6,) if space_cls is ProteinSVD else ()
    space = space_cls(*args, batches=batches).fit_rows(Y, rows)
    assert space.per_fold and space.describe()["batch_centering"] is True
    other = Y.copy()
    other[80:] += 100.0  # rows outside the fit change nothing
    again = space_cls(*args, batches=batches).fit_rows(other, rows)
    np.testing.assert_array_equal(space.offsets.medians, again.offsets.medians)
    learner_targets = space.transform_rows(Y, rows)
    assert learner_targets.shape == (80, 6 if space_cls is ProteinSVD else 12)
    assert learner_targets.dtype == np.float32
    if space_cls is NativeTargets:
        centred = Y[rows] - space.offsets.of(batches[rows])
        np.testing.assert_allclose(learner_targets, centred, rtol=1e-6)
        np.testing.assert_allclose(space.inverse(learner_targets), centred + space.offsets.typical, rtol=1e-6)


def test_batch_centring_never_reads_the_predicted_rows_targets():
    Y, batches = _proteins(n=160)
    X = np.random.default_rng(1).normal(size=(160, 6)).astype(np.float32) + Y[:, :6]
    folds = (np.arange(160) >= 120).astype(np.int64)  # fold 1: the last 40 rows
    learner = make_learner("ridge", {"alpha": 1.0}, seed=0, n_jobs=1)
    first = cross_validate(learner, X, Y, folds, space=ProteinSVD(4, True, batches=batches))
    other = Y.copy()
    other[120:] *= 3.0
    second = cross_validate(learner, X, other, folds, space=ProteinSVD(4, True, batches=batches))
    np.testing.assert_array_equal(first.folds["1"].valid, second.folds["1"].valid)
    assert first.oof.shape == Y.shape and np.isfinite(first.oof).all()


def _genes(n=90, genes=30, seed=0):
    rng = np.random.default_rng(seed)
    Y = sp.random(n, genes, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    Y.data = rng.gamma(2.0, 1.0, Y.nnz).astype(np.float32)
    batches = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    return Y, batches


def test_batch_centred_genes_add_the_typical_offset_back():
    Y, batches = _genes()
    svd = GeneSVD(8).fit(Y).with_fitted(5)
    space = BatchCentredGenes.around(svd, batches).clone().fit_rows(Y, np.arange(60))
    z = space.transform_rows(Y, np.arange(60))
    assert z.shape == (60, 5) and z.dtype == np.float32
    expected = svd.coefficients(Y)[:60] - space.offsets.of(batches[:60])
    np.testing.assert_allclose(z, expected[:, :5], rtol=1e-6)
    predictions = space.inverse(z)
    assert predictions.shape == (60, 8)
    np.testing.assert_allclose(predictions[:, 5:], np.broadcast_to(space.offsets.typical[5:], (60, 3)))
    genes = space.reconstruct(predictions)
    np.testing.assert_allclose(space.learner_basis.reconstruct(z), genes, rtol=1e-4, atol=1e-5)
    assert space.describe()["batch_centering"] is True and space.describe()["fitted_components"] == 5
    assert type(svd) is GeneSVD and not hasattr(svd, "offsets")  # the gene SVD itself is left alone


def test_row_clipping_and_median_scaling_of_dense_rows():
    Y, _ = _proteins()
    clipped = clip_rows(Y, 0.1)
    low, high = np.quantile(Y, [0.1, 0.9], axis=1)
    np.testing.assert_allclose(clipped, np.clip(Y, low[:, None], high[:, None]), rtol=1e-6)
    assert clip_rows(Y, 0.0) is Y
    values = np.array([[1.0, 2, 4], [-3, -1, 2]], np.float32)
    np.testing.assert_allclose(median_scale_rows(values), [[0.5, 1, 2], [-3, -1, 2]])


def test_sparse_row_transforms_match_the_dense_ones(monkeypatch):
    import mmscel.targets.rows as rows_module

    monkeypatch.setattr(rows_module, "DENSE_CHUNK_VALUES", 70)  # a few rows per chunk
    Y, _ = _genes()
    Y.data[:5] = 50.0  # outliers to clip
    dense = Y.toarray()
    clipped = Y.copy()
    clip_sparse_rows(clipped, 0.05)
    high = np.quantile(dense, 0.95, axis=1)
    expected = np.where(dense != 0, np.minimum(dense, high[:, None]), 0.0)
    np.testing.assert_allclose(clipped.toarray(), expected, rtol=1e-6)
    assert clipped.nnz == Y.nnz

    normalised = Y.copy()
    median_normalize_sparse_rows(normalised, rows_per_chunk=7)
    counts = np.expm1(dense.astype(np.float64))
    counts[counts == 0] = np.nan
    median = np.nanmedian(counts, axis=1)
    expected = np.log1p(np.nan_to_num(counts / median[:, None]))
    np.testing.assert_allclose(normalised.toarray(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        sparse_row_medians(Y), np.nan_to_num(np.nanmedian(np.where(dense != 0, dense, np.nan), 1))
    )


@pytest.mark.parametrize("space_cls", [NativeTargets, ProteinSVD])
def test_centred_proteins_give_learners_the_map_to_their_predictions(space_cls):
    Y, batches = _proteins()
    rows = np.arange(0, 80)
    args = (12,) if space_cls is ProteinSVD else ()
    assert space_cls(*args).fit_rows(Y, rows).learner_basis is None  # uncentred: outputs are the predictions
    space = space_cls(*args, batches=batches).fit_rows(Y, rows)
    z = space.transform_rows(Y, rows)
    np.testing.assert_allclose(space.learner_basis.reconstruct(z), space.inverse(z), rtol=1e-5, atol=1e-5)
    on_typical_batch = Y[rows] - space.offsets.of(batches[rows]) + space.offsets.typical
    np.testing.assert_allclose(space.basis_targets(Y, rows), on_typical_batch, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(space.inverse(z), on_typical_batch, rtol=1e-4, atol=1e-4)  # all 12 directions kept


def _shifted_proteins(n=400, width=16, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    batches = np.array(["a_2", "a_3", "b_2", "b_3"])[rng.integers(0, 4, n)]
    level = rng.gamma(2.0, 0.5, width)  # the typical offset: a fair share of each cell's profile
    signal = np.tanh(X @ rng.normal(size=(8, width)))
    shift = {b: rng.normal(0, 0.5, width) for b in np.unique(batches)}
    Y = level + signal + np.stack([shift[b] for b in batches]) + rng.normal(0, 0.2, (n, width))
    return X, Y.astype(np.float32), batches


def test_a_correlation_loss_on_centred_proteins_keeps_the_offset_in_scale():
    X, Y, batches = _shifted_proteins()
    folds = np.arange(len(Y)) % 3
    params = {"hidden": [32], "epochs": 40, "early_stopping": False, "batch_size": 64, "loss": "correlation"}
    learner = make_learner("mlp", params, seed=0, n_jobs=1)
    plain = cross_validate(learner, X, Y, folds, space=NativeTargets(True)).cv
    centred = cross_validate(learner, X, Y, folds, space=NativeTargets(True, batches=batches)).cv
    floor = cross_validate(learner, X, Y, folds, space=NativeTargets(True)).cv_mean_profile
    assert plain > floor + 0.05
    assert centred > plain - 0.005, (plain, centred, floor)  # with the loss before the offset: 0.851 vs 0.866


def test_centred_genes_give_learners_the_genes_of_their_targets():
    rng = np.random.default_rng(2)
    Y = sp.csr_matrix((rng.gamma(2.0, 1.0, (90, 4)) @ rng.gamma(1.0, 1.0, (4, 30))).astype(np.float32))  # rank 4
    batches = np.array(["a", "b", "c"])[rng.integers(0, 3, 90)]
    rows = np.arange(60)
    space = BatchCentredGenes.around(GeneSVD(4).fit(Y), batches).clone().fit_rows(Y, rows)
    genes = space.basis_targets(Y, rows)
    shift = (space.offsets.of(batches[rows]) - space.offsets.typical) @ space.components
    np.testing.assert_allclose(genes[np.arange(60)], Y.toarray()[rows] - shift, rtol=1e-4, atol=1e-4)
    # every component fitted and genes of rank 4: the learner targets map exactly onto them
    z = space.transform_rows(Y, rows)
    np.testing.assert_allclose(space.learner_basis.reconstruct(z), genes[np.arange(60)], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("aux", [{}, {"aux_loss": "mae", "aux_space": "targets"}])
def test_an_mlp_fits_centred_genes_through_their_moments_or_rows(aux):
    X, proteins, batches = _shifted_proteins()
    Y = sp.csr_matrix(np.maximum(np.hstack([proteins, proteins[:, ::-1] - 1.0]), 0))  # sparse "genes"
    params = {"hidden": [32], "epochs": 20, "early_stopping": False, "batch_size": 64, "loss": "correlation", **aux}
    space = BatchCentredGenes.around(GeneSVD(12).fit(Y).with_fitted(8), batches)
    result = cross_validate(make_learner("mlp", params, seed=0, n_jobs=1), X, Y, np.arange(Y.shape[0]) % 3, space=space)
    assert np.isfinite(result.oof).all() and result.cv > result.cv_mean_profile + 0.05
