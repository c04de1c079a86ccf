"""molgnn.uncertainty: conformal coverage on synthetic data with known noise, Mondrian bins under shift,
domain distances and Tanimoto similarities with known answers, threshold calibration, ensemble spread,
beta-NLL, settings validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgnn.errors import MolgnnError
from molgnn.tasks.regression import masked_beta_nll
from molgnn.uncertainty.calibration import combine
from molgnn.uncertainty.conformal import conformal_interval
from molgnn.uncertainty.domain import DomainIndex, fit_threshold, morgan_bits
from molgnn.uncertainty.metrics import coverage, error_by_distance_quartile, spread_error_spearman
from molgnn.uncertainty.settings import UncertaintySettings


def _noisy(n: int, seed: int, scale) -> tuple[np.ndarray, np.ndarray]:
    """Predictions 0 and targets with Gaussian noise of std ``scale`` (scalar or [n])."""
    rng = np.random.default_rng(seed)
    return np.zeros(n), rng.normal(0.0, 1.0, n) * scale


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_split_conformal_covers_the_level_on_known_noise(level):
    pred_cal, y_cal = _noisy(2000, 0, 1.0)
    pred, y = _noisy(20000, 1, 1.0)
    lower, upper = conformal_interval(y_cal - pred_cal, None, pred, None, level)
    assert abs(coverage(y, lower, upper) - level) < 0.02
    # the half-width is the normal quantile for unit noise (1.28 / 1.64 / 1.96)
    from scipy.stats import norm

    assert upper[0] == pytest.approx(norm.ppf(0.5 + level / 2), abs=0.1)


def test_normalized_conformal_adapts_the_width_to_the_spread():
    rng = np.random.default_rng(2)
    s_cal, s = rng.uniform(0.2, 3.0, 3000), rng.uniform(0.2, 3.0, 20000)
    pred_cal, y_cal = _noisy(3000, 3, s_cal)
    pred, y = _noisy(20000, 4, s)
    lower, upper = conformal_interval(y_cal - pred_cal, s_cal, pred, s, 0.9)
    assert abs(coverage(y, lower, upper) - 0.9) < 0.02
    wide = s > 2.0  # coverage holds where the noise is large, not only on average
    assert abs(coverage(y[wide], lower[wide], upper[wide]) - 0.9) < 0.03
    np.testing.assert_allclose((upper - lower) / s, (upper - lower)[0] / s[0], rtol=1e-9)


def test_mondrian_bins_keep_coverage_where_the_noise_grows_with_distance():
    rng = np.random.default_rng(5)
    d_cal, d = rng.uniform(0, 1, 3000), rng.uniform(0, 1, 20000)
    pred_cal, y_cal = _noisy(3000, 6, 0.2 + 2.0 * d_cal)  # far molecules are noisier; the spread misses it
    pred, y = _noisy(20000, 7, 0.2 + 2.0 * d)
    far = d > 2 / 3
    plain = conformal_interval(y_cal - pred_cal, None, pred, None, 0.9)
    binned = conformal_interval(y_cal - pred_cal, None, pred, None, 0.9, cal_score=d_cal, score=d, n_bins=3)
    assert coverage(y[far], *(b[far] for b in plain)) < 0.84
    assert abs(coverage(y[far], *(b[far] for b in binned)) - 0.9) < 0.03
    assert abs(coverage(y, *binned) - 0.9) < 0.02


def test_missing_targets_and_invalid_predictions():
    res = np.array([0.1, np.nan, -0.2, 0.3, np.nan] * 20)
    lower, upper = conformal_interval(res, None, np.array([1.0, np.nan]), None, 0.9)
    assert np.isfinite(lower[0]) and np.isfinite(upper[0]) and lower[0] < 1.0 < upper[0]
    assert np.isnan(lower[1]) and np.isnan(upper[1])


def test_domain_distance_and_tanimoto_known_answers():
    emb = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    fps = torch.from_numpy(
        np.stack([morgan_bits(Chem.MolFromSmiles(s)) for s in ("CCO", "c1ccccc1", "CCCCCC")])
    )
    index = DomainIndex(emb, fps, k=1)
    np.testing.assert_allclose(index.distance(torch.tensor([[0.0, 0.0], [3.0, 0.0]])).numpy(), [0.0, 3.0])
    index.k = 2
    np.testing.assert_allclose(index.distance(torch.tensor([[0.0, 0.0]])).numpy(), [2.5])  # (0 + 5) / 2
    query = torch.from_numpy(
        np.stack([morgan_bits(Chem.MolFromSmiles(s)) for s in ("OCC", "c1ccccc1O", "N#N")])
    )
    sim = index.similarity(query).numpy()
    assert sim[0] == pytest.approx(1.0)  # ethanol written another way
    assert 0.1 < sim[1] < 0.9  # phenol vs benzene
    assert sim[2] < 0.1


def test_domain_threshold_sits_where_the_error_grows():
    rng = np.random.default_rng(0)
    distance = rng.uniform(0, 2, 2000)
    err = np.abs(rng.normal(0, np.where(distance < 1.0, 1.0, 3.0)))  # error triples beyond distance 1
    fit = fit_threshold(distance, err, tolerance=0.25)
    assert 0.8 < fit["threshold"] < 1.05
    assert fit["in_domain_error"] == pytest.approx(np.sqrt(2 / np.pi), rel=0.1)  # E|N(0, 1)|
    assert fit["knots_y"] == sorted(fit["knots_y"])  # isotonic: never decreasing


def test_metrics_known_answers():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert coverage(y, y - 0.5, y + 0.5) == 1.0 and coverage(y, y + 0.1, y + 0.5) == 0.0
    err = np.array([1.0, 2.0, 3.0, 4.0])
    assert spread_error_spearman(err, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(1.0)
    assert np.isnan(spread_error_spearman(err, np.ones(4)))  # a constant spread ranks nothing
    assert error_by_distance_quartile(np.arange(8.0), np.arange(8.0)) == [0.5, 2.5, 4.5, 6.5]


def test_ensemble_spread_is_within_plus_between_variance():
    means = [np.array([[1.0]]), np.array([[3.0]])]
    mean, sigma = combine(means, [np.array([[2.0]]), np.array([[2.0]])])
    assert mean[0, 0] == 2.0 and sigma[0, 0] == pytest.approx(np.sqrt(4.0 + 1.0))
    assert combine(means, [None, None])[1][0, 0] == pytest.approx(1.0)  # plain ensemble: std of the means


def test_beta_nll_is_gaussian_nll_at_beta_zero_and_masks_missing():
    mean, var = torch.tensor([[0.5, 1.0]]), torch.tensor([[2.0, 0.5]])
    target = torch.tensor([[1.5, float("nan")]])
    expected = torch.nn.functional.gaussian_nll_loss(mean[:, :1], target[:, :1], var[:, :1])
    assert masked_beta_nll(mean, var, target, 0.0).item() == pytest.approx(expected.item())
    assert masked_beta_nll(mean, var, target, 1.0).item() == pytest.approx(expected.item() * 2.0)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"method": "bayes"}, "uncertainty.method"),
        ({"level": 1.5}, "uncertainty.level"),
        ({"domain_k": 0}, "uncertainty.domain_k"),
        ({"members": 1}, "uncertainty.members"),
    ],
)
def test_bad_settings_name_the_config_key(kwargs, key):
    with pytest.raises(MolgnnError, match=key):
        UncertaintySettings(**kwargs)
