"""The features' randomized SVD: scikit-learn's quality, deterministic across threads, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd

from mmscel.features import blockops
from mmscel.features.blockops import RowBlocks, sparse_block_bounds
from mmscel.features.compute import truncated_svd
from mmscel.features.randomized_svd import RandomizedSVD, randomized_svd

# The densities of the Multiome inputs (~2.4 %) and the CITEseq inputs (~19 %).
DENSITIES = {"multiome": 0.024, "citeseq": 0.19}


def structured(n_rows: int, n_cols: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """A float32 CSR whose stored values follow 6 row groups (a spectrum with structure), as the inputs."""
    rng = np.random.default_rng(seed)
    matrix = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32, random_state=seed)
    levels = rng.gamma(0.5, 2.0, (6, n_cols))
    rows = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    matrix.data = (levels[rng.integers(0, 6, n_rows)[rows], matrix.indices] * (0.5 + matrix.data)).astype(np.float32)
    return matrix


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks small enough that the test matrices span many of them."""
    monkeypatch.setattr(blockops, "SPARSE_BLOCK_NNZ", 7_000)
    monkeypatch.setattr(blockops, "DENSE_BLOCK_BYTES", 60_000)


def arrays(matrix: sp.csr_matrix) -> list[np.ndarray]:
    return [matrix.data.copy(), matrix.indices.copy(), matrix.indptr.copy()]


@pytest.mark.parametrize("density", DENSITIES.values(), ids=DENSITIES.keys())
@pytest.mark.parametrize("shape", [(900, 1500), (1200, 400)], ids=["wide", "tall"])
def test_explained_variance_matches_scikit_learn(small_blocks, density, shape):
    matrix = structured(*shape, density)
    ours = RandomizedSVD(24, random_state=0, threads=2)
    scores = ours.fit_transform(matrix)
    theirs = TruncatedSVD(24, algorithm="randomized", random_state=0)
    expected = theirs.fit_transform(matrix)
    assert abs(ours.explained_variance_ratio_.sum() - theirs.explained_variance_ratio_.sum()) < 1e-3
    np.testing.assert_allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-3)
    # The same test matrix and sign rule: the leading scores agree, signs included.
    np.testing.assert_allclose(scores[:, :5], expected[:, :5], rtol=1e-2, atol=1e-2 * np.abs(expected[:, :5]).max())
    assert ours.components_.dtype == np.float32 and scores.dtype == np.float32


@pytest.mark.parametrize("normalizer", ["auto", "LU", "QR", "none"])
def test_singular_values_match_scikit_learn_randomized_svd(small_blocks, normalizer):
    matrix = structured(700, 1100, DENSITIES["multiome"], seed=3)
    settings = {"n_oversamples": 10, "n_iter": 4, "power_iteration_normalizer": normalizer, "random_state": 1}
    _, s, vt = randomized_svd(matrix, 16, threads=2, **settings)
    _, expected_s, expected_vt = sklearn_randomized_svd(matrix, 16, flip_sign=False, **settings)
    np.testing.assert_allclose(s, expected_s, rtol=1e-3)
    # Right singular vectors up to sign: |<ours, theirs>| = 1 for the well separated leading ones.
    overlap = np.abs(np.sum(vt[:4] * expected_vt[:4], axis=1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-3)


def test_dense_arrays_are_decomposed_too(small_blocks):
    matrix = structured(500, 300, 0.3, seed=5).toarray()
    ours = RandomizedSVD(10, random_state=0, threads=2).fit(matrix)
    theirs = TruncatedSVD(10, algorithm="randomized", random_state=0).fit(matrix)
    np.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-5)


@pytest.mark.parametrize("density", DENSITIES.values(), ids=DENSITIES.keys())
def test_same_seed_same_result_for_one_and_two_threads(small_blocks, density):
    # Bit-identical, not merely close: the blocks are cut from the matrix alone, each block is
    # multiplied single-threaded, and the blocks' shares of A.T @ Y are summed in block order.
    matrix = structured(800, 1000, density, seed=1)
    fits = [RandomizedSVD(12, random_state=7, threads=threads) for threads in (1, 2, 2)]
    scores = [fit.fit_transform(matrix) for fit in fits]
    for fit, score in zip(fits[1:], scores[1:]):
        np.testing.assert_array_equal(score, scores[0])
        np.testing.assert_array_equal(fit.components_, fits[0].components_)
        np.testing.assert_array_equal(fit.explained_variance_ratio_, fits[0].explained_variance_ratio_)
    other = RandomizedSVD(12, random_state=8, threads=2).fit_transform(matrix)
    assert not np.array_equal(other, scores[0])


@pytest.mark.parametrize("density", DENSITIES.values(), ids=DENSITIES.keys())
def test_transform_matches_the_fitted_scores(small_blocks, density):
    matrix = structured(600, 900, density, seed=2)
    ours = RandomizedSVD(8, random_state=0, threads=2)
    scores = ours.fit_transform(matrix)
    np.testing.assert_allclose(ours.transform(matrix), scores, rtol=1e-5, atol=1e-5 * np.abs(scores).max())
    new_rows = structured(50, 900, density, seed=9)
    expected = new_rows.toarray() @ ours.components_.T
    np.testing.assert_allclose(ours.transform(new_rows), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_the_matrix_is_given_back_unchanged(small_blocks, index_dtype):
    matrix = structured(700, 1200, DENSITIES["multiome"], seed=4)
    matrix.indices = matrix.indices.astype(index_dtype)
    matrix.indptr = matrix.indptr.astype(np.int64)  # as a loader may leave it
    before = arrays(matrix)
    with RowBlocks(matrix, threads=2) as blocks:
        assert blocks.kind == "csc" and len(blocks.bounds) > 2
        assert not np.array_equal(matrix.indices, before[1])  # reordered while open
    for got, expected in zip(arrays(matrix), before):
        np.testing.assert_array_equal(got, expected)
    truncated_svd(matrix, 6, seed=0)
    for got, expected in zip(arrays(matrix), before):
        np.testing.assert_array_equal(got, expected)


def test_unsorted_or_read_only_matrices_are_not_reordered(small_blocks):
    matrix = structured(400, 700, DENSITIES["multiome"], seed=6)
    expected = RandomizedSVD(6, random_state=0).fit(matrix).singular_values_
    shuffled = matrix.copy()
    for row in range(shuffled.shape[0]):  # the same matrix, its column indices unsorted within rows
        lo, hi = shuffled.indptr[row], shuffled.indptr[row + 1]
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = shuffled.indices[lo:hi][::-1], shuffled.data[lo:hi][::-1]
    shuffled.has_sorted_indices = False
    read_only = matrix.copy()
    read_only.data.flags.writeable = False
    for other in (shuffled, read_only):
        before = arrays(other)
        assert RowBlocks(other).kind == "csr"
        np.testing.assert_allclose(RandomizedSVD(6, random_state=0).fit(other).singular_values_, expected, rtol=1e-5)
        for got, was in zip(arrays(other), before):
            np.testing.assert_array_equal(got, was)


def test_memory_stays_far_below_a_dense_copy():
    # 20,000 x 400,000 would be 32 GB dense in float32; the fit must stay within a few blocks of it.
    n_rows, n_cols = 20_000, 400_000
    rng = np.random.default_rng(0)
    rows, columns = rng.integers(0, n_rows, 160_000), rng.integers(0, n_cols, 160_000)
    matrix = sp.csr_matrix((rng.random(160_000, np.float32), (rows, columns)), shape=(n_rows, n_cols))
    limit = 200 * 2**20
    tracemalloc.start()
    try:
        RandomizedSVD(4, n_iter=1, n_oversamples=2, random_state=0, threads=2).fit(matrix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit < n_rows * n_cols * 4 / 100


def test_dense_blocks_are_bounded(monkeypatch):
    monkeypatch.setattr(blockops, "DENSE_BLOCK_BYTES", 2**20)
    matrix = structured(300, 20_000, DENSITIES["citeseq"], seed=0)
    with RowBlocks(matrix, threads=2) as blocks:
        assert blocks.kind == "dense" and len(blocks.bounds) == 24  # 13 rows of 80,000 bytes per MiB
        assert all((stop - start) * 20_000 * 4 <= 2**20 for start, stop in blocks.bounds)
        Q = np.ones((20_000, 3), np.float32)
        np.testing.assert_allclose(blocks.matmat(Q), matrix @ Q, rtol=1e-5)


def test_sparse_blocks_hold_at_most_their_share_of_values():
    indptr = np.cumsum([0, 5, 5, 20, 1, 1, 1, 9])
    bounds = sparse_block_bounds(indptr, 10)
    assert bounds == [(0, 2), (2, 3), (3, 6), (6, 7)]
    assert all(indptr[stop] - indptr[start] <= 10 or stop - start == 1 for start, stop in bounds)
    assert sparse_block_bounds(np.zeros(1, np.int64), 10) == []


def test_bad_normalizer_is_refused():
    with pytest.raises(ValueError, match="power_iteration_normalizer"):
        randomized_svd(structured(50, 60, 0.2), 3, n_iter=3, power_iteration_normalizer="SVD")


def test_power_iterations_report_progress(monkeypatch):
    from mmscel.features import randomized_svd as module

    seen: list[tuple[str, bool, int]] = []

    def recording_track(items, description, total=None, enabled=True):
        for item in items:
            seen.append((description, enabled, item))
            yield item

    monkeypatch.setattr(module, "track", recording_track)
    RandomizedSVD(4, n_iter=3, random_state=0, description="test SVD").fit(structured(60, 80, 0.2))
    assert seen == [("test SVD", True, 0), ("test SVD", True, 1), ("test SVD", True, 2)]
    seen.clear()
    RandomizedSVD(4, n_iter=2, random_state=0).fit(structured(60, 80, 0.2))
    assert [enabled for _, enabled, _ in seen] == [False, False]
