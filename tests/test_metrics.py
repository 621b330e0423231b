import numpy as np
import pytest

from mmscel.metrics import headroom_share, mean_pearson, pearson_per_row, pearson_per_segment, pooled_score


def _numpy_rows(a, b):
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])


def test_per_row_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(300, 140)).astype(np.float32)
    pred = (truth + rng.normal(scale=0.8, size=truth.shape)).astype(np.float32)
    np.testing.assert_allclose(pearson_per_row(truth, pred), _numpy_rows(truth, pred), rtol=1e-6, atol=1e-9)
    assert mean_pearson(truth, pred) == pytest.approx(_numpy_rows(truth, pred).mean(), abs=1e-9)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(1)
    truth, pred = rng.normal(size=(1000, 50)), rng.normal(size=(1000, 50))
    np.testing.assert_allclose(pearson_per_row(truth, pred, chunk_rows=7), pearson_per_row(truth, pred), atol=1e-12)


def test_invariant_to_per_cell_affine_transforms():
    rng = np.random.default_rng(2)
    truth, pred = rng.normal(size=(20, 30)), rng.normal(size=(20, 30))
    scaled = pred * rng.uniform(0.5, 3, (20, 1)) + rng.normal(size=(20, 1))
    np.testing.assert_allclose(pearson_per_row(truth, scaled), pearson_per_row(truth, pred), atol=1e-12)


def test_constant_rows_score_zero_where_numpy_gives_nan():
    truth = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    pred = np.array([[7.0, 7.0, 7.0], [1.0, 2.0, 4.0], [1.0, 2.0, 3.0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(np.corrcoef(truth[0], pred[0])[0, 1])
    scores = pearson_per_row(truth, pred)
    assert scores[0] == 0.0 and scores[2] == 0.0
    assert scores[1] == pytest.approx(np.corrcoef(truth[1], pred[1])[0, 1])


def test_segments_equal_rows():
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 40, size=50)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    truth, pred = rng.normal(size=lengths.sum()), rng.normal(size=lengths.sum())
    expected = [np.corrcoef(truth[s : s + n], pred[s : s + n])[0, 1] for s, n in zip(starts, lengths)]
    np.testing.assert_allclose(pearson_per_segment(truth, pred, starts), expected, atol=1e-12)


def test_segment_starts_are_validated():
    with pytest.raises(ValueError):
        pearson_per_segment(np.ones(4), np.ones(4), [1, 2])


def test_pooled_score_weights_by_cell_count():
    assert pooled_score(np.full(3, 1.0), np.zeros(1)) == pytest.approx(0.75)
    assert headroom_share(0.7, 0.6, 0.8) == pytest.approx(0.5)
