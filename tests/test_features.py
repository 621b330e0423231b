"""Feature building: block-wise per-cell statistics equal the whole-matrix computation."""

import numpy as np
import pytest
import scipy.sparse as sp

from mmscel.data.load import load, stacked_inputs
from mmscel.features import compute
from mmscel.features.compute import cell_stats, chromosome_ratios, first_rows, row_blocks, sparse_correlation, transform


@pytest.fixture
def matrix():
    rng = np.random.default_rng(0)
    m = sp.random(300, 50, density=0.1, format="csr", dtype=np.float32, random_state=1)
    m.data = rng.gamma(2.0, 1.0, m.nnz).astype(np.float32)
    m = sp.diags(np.r_[np.ones(5), 0.0, np.ones(294)].astype(np.float32)) @ m  # row 5 empty
    m.eliminate_zeros()
    return m


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of ~40 non-zeros, so every per-cell statistic crosses many block edges."""
    whole = compute.row_blocks
    monkeypatch.setattr(compute, "row_blocks", lambda m, max_nnz=2**24: whole(m, 40))


def test_row_blocks_cover_every_row_once(matrix):
    covered = np.concatenate([np.arange(a, b) for a, b in row_blocks(matrix, 40)])
    np.testing.assert_array_equal(covered, np.arange(matrix.shape[0]))
    assert list(row_blocks(sp.csr_matrix((0, 3)))) == []


def test_statistics_do_not_depend_on_the_blocks(matrix, tiny_blocks):
    dense = matrix.toarray().astype(np.float64)
    stats = cell_stats(matrix)
    np.testing.assert_allclose(stats[:, 0], (dense != 0).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats[:, 1], dense.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats[:, 2], dense.std(axis=1), rtol=1e-4)
    row = dense[7][dense[7] != 0]
    np.testing.assert_allclose(stats[7, 4], np.sort(row)[int(np.floor(0.5 * (len(row) - 1)))], rtol=1e-6)
    assert (stats[5] == 0).all()

    peaks = np.array([f"chr{1 + i % 3}:{i}-{i + 1}" for i in range(49)] + ["GL000194.1:1-2"])
    names, ratios = chromosome_ratios(matrix, peaks)
    assert names == ["chrom:chr1", "chrom:chr2", "chrom:chr3", "chrom:other"]
    np.testing.assert_allclose(ratios[:, 3], dense[:, 49] != 0)
    np.testing.assert_allclose(ratios[:, 0], (dense[:, 0:49:3] != 0).mean(axis=1), rtol=1e-6)


def test_l2_transform_in_blocks_and_in_place(matrix, tiny_blocks):
    dense = matrix.toarray().astype(np.float64)
    copy = transform(matrix, ["log1p", "l2"])
    expected = np.log1p(dense)
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    expected = np.divide(expected, norms, out=np.zeros_like(expected), where=norms > 0)
    np.testing.assert_allclose(copy.toarray(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(matrix.toarray(), dense.astype(np.float32))  # the copy left the input alone
    same = transform(matrix, ["log1p", "l2"], copy=False)
    assert same is matrix
    np.testing.assert_allclose(matrix.toarray(), expected, rtol=1e-5, atol=1e-7)


def test_sparse_correlation_matches_numpy(matrix, tiny_blocks):
    targets = np.random.default_rng(1).normal(size=(matrix.shape[0], 4)) + matrix[:, :4].toarray()
    corr = sparse_correlation(matrix, targets)
    dense = matrix.toarray()
    expected = np.corrcoef(dense.T, targets.T)[: dense.shape[1], dense.shape[1] :]
    np.testing.assert_allclose(corr, expected, rtol=1e-6, atol=1e-9)


def test_first_rows_is_a_view(matrix):
    view = first_rows(matrix, 100)
    assert (view != matrix[:100]).nnz == 0
    assert np.shares_memory(view.data, matrix.data)


def test_stacked_inputs_are_train_then_test(tiny_prepared):
    for task in ("cite", "multi"):
        train = load(task, "train", tiny_prepared)
        test = load(task, "test", tiny_prepared, check=False)
        stacked = stacked_inputs(task, tiny_prepared)
        assert (stacked != sp.vstack([train.inputs, test.inputs]).tocsr()).nnz == 0
        light = load(task, "train", tiny_prepared, inputs=False, targets=False)
        assert light.inputs is None and light.targets is None
        np.testing.assert_array_equal(light.input_names, train.input_names)
        np.testing.assert_array_equal(light.target_names, train.target_names)
