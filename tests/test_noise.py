import numpy as np
import pytest
from scipy import stats

from mmscel.data.synth.noise import expected_log1p_nb, sample_nb


@pytest.mark.parametrize(
    "mu,theta,scale",
    [(1e-3, 5.0, 3.0), (0.4, 4.0, 2.5), (3.0, 12.0, 1.0), (45.0, 6.0, 1.0), (800.0, 6.0, 1.0), (9000.0, 6.0, 0.5)],
)
def test_expected_log1p_matches_brute_force_sum(mu, theta, scale):
    k = np.arange(0, int(mu * 30 + 500))
    pmf = stats.nbinom.pmf(k, theta, theta / (theta + mu))
    exact = (pmf * np.log1p(scale * k)).sum() / pmf.sum()
    assert expected_log1p_nb(mu, theta, scale) == pytest.approx(exact, abs=1e-8)


def test_expectation_agrees_with_sampling_and_broadcasts():
    rng = np.random.default_rng(0)
    mu = np.array([[0.5, 5.0], [50.0, 0.0]])
    expected = expected_log1p_nb(mu, 6.0, 2.0)
    assert expected.shape == (2, 2) and expected[1, 1] == 0.0
    draws = np.log1p(2.0 * sample_nb(rng, np.broadcast_to(mu, (40_000, 2, 2)), 6.0)).mean(axis=0)
    np.testing.assert_allclose(draws, expected, atol=0.02)
