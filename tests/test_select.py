"""Selection (molgnn.uncertainty.select) and molgnn-select: acquisition strategies, NaN handling, minimization,
and the console script on a small ensemble with an invalid SMILES among the candidates."""

from __future__ import annotations

import numpy as np
import pytest

from molgnn.errors import MolgnnError
from molgnn.uncertainty.select import STRATEGIES, acquisition, expected_improvement, rank


def test_greedy_returns_top_k_means():
    mean = np.array([0.1, 5.0, -2.0, 3.0, 4.0])
    assert rank(mean, None, "greedy", 3).tolist() == [1, 4, 3]


def test_ucb_prefers_higher_std_at_equal_means():
    mean = np.array([1.0, 1.0, 1.0])
    std = np.array([0.1, 0.5, 0.2])
    assert rank(mean, std, "ucb", 3, beta=1.0).tolist() == [1, 2, 0]
    assert rank(mean, std, "ucb", 1, beta=0.0).tolist() == [0]  # beta 0: greedy, ties in input order


def test_thompson_reproducible_with_seed_and_differs_across_seeds():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=200), np.full(200, 1.0)
    a = rank(mean, std, "thompson", 20, seed=7)
    assert np.array_equal(a, rank(mean, std, "thompson", 20, seed=7))
    assert not np.array_equal(a, rank(mean, std, "thompson", 20, seed=8))


@pytest.mark.parametrize("strategy", ["ei", "pi"])
def test_improvement_without_best_is_refused(strategy):
    with pytest.raises(MolgnnError, match=f"'{strategy}'.*best"):
        rank(np.zeros(3), np.ones(3), strategy, 1)


@pytest.mark.parametrize("strategy", ["ucb", "thompson", "ei", "pi"])
def test_missing_std_is_refused_naming_the_strategy(strategy):
    with pytest.raises(MolgnnError, match=f"'{strategy}'.*std"):
        rank(np.zeros(3), None, strategy, 1, best=0.0)


def test_unknown_strategy_is_refused():
    with pytest.raises(MolgnnError, match="unknown selection strategy 'bogus'"):
        rank(np.zeros(3), np.ones(3), "bogus", 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nan_mean_never_selected(strategy):
    mean = np.array([np.nan, 1.0, np.nan, 0.5, 100.0])
    mean[4] = np.nan
    std = np.array([10.0, 0.1, 10.0, 0.1, 0.1])
    picked = rank(mean, std, strategy, 5, best=0.0, seed=3)
    assert sorted(picked.tolist()) == [1, 3]  # fewer than k come back when fewer are valid


def test_maximize_false_flips():
    mean = np.array([0.1, 5.0, -2.0, 3.0])
    std = np.array([0.1, 0.1, 0.1, 3.5])
    assert rank(mean, None, "greedy", 2, maximize=False).tolist() == [2, 0]
    # lower confidence bound: 3 - 3.5 = -0.5 beats 0.1 - 0.1 = 0
    assert rank(mean, std, "ucb", 2, maximize=False).tolist() == [2, 3]
    # improvement below best=0: only -2.0 (certain) and 3.0 +- 3.5 (some chance) can improve
    assert rank(mean, std, "pi", 2, maximize=False, best=0.0).tolist() == [2, 3]


def test_expected_improvement_closed_form():
    mean, std, best = np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.0, 0.0]), 1.0
    ei = expected_improvement(mean, std, best)
    assert ei[0] == pytest.approx(1.0 / np.sqrt(2 * np.pi))  # z = 0: std * phi(0)
    assert ei[1] == 0.0 and ei[2] == pytest.approx(1.0)
    draws = np.random.default_rng(0).normal(0.5, 2.0, 400_000)
    mc = np.maximum(draws - 1.0, 0).mean()
    assert acquisition([0.5], [2.0], "ei", best=1.0)[0] == pytest.approx(mc, rel=0.02)
