"""Acquisition functions: which candidates to test next, from a predicted mean [N] and spread (std) [N].

Pure numpy (scipy for the normal distribution). Every function scores *maximization*: ``rank(...,
maximize=False)`` flips the signs of ``mean`` and ``best`` first, so ``ucb`` becomes a lower confidence
bound on the original scale (mean - beta*std is minimized) and EI/PI count improvement below ``best``.

Batch selection is the top-k of the acquisition score computed once for all candidates (no fantasized
updates between picks): simple and deterministic for the score-based strategies; for ``thompson`` the
batch is the top-k of a single joint posterior draw. Candidates with a NaN mean (invalid rows), or a NaN
std where the strategy uses std, are never selected.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from molgnn.errors import MolgnnError

STRATEGIES = ("greedy", "ucb", "thompson", "ei", "pi", "random")
NEEDS_STD = frozenset({"ucb", "thompson", "ei", "pi"})
NEEDS_BEST = frozenset({"ei", "pi"})


def greedy(mean: np.ndarray) -> np.ndarray:
    """Exploitation: the predicted mean. mean [N] -> score [N]."""
    return np.asarray(mean, dtype=np.float64)


def ucb(mean: np.ndarray, std: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Upper confidence bound mean + beta*std. mean, std [N] -> score [N]."""
    return np.asarray(mean, dtype=np.float64) + float(beta) * np.asarray(std, dtype=np.float64)


def thompson(mean: np.ndarray, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per candidate from N(mean, std^2) (independent marginals). mean, std [N] -> score [N]."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return mean + std * rng.standard_normal(mean.shape)


def _z(mean: np.ndarray, std: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    gain = mean - float(best)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, gain / np.where(std > 0, std, 1.0), 0.0)
    return gain, std, z


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Closed-form EI over ``best`` for a Gaussian N(mean, std^2):
    (mean - best) * Phi(z) + std * phi(z), z = (mean - best) / std; max(mean - best, 0) where std == 0.
    mean, std [N] -> score [N] (>= 0)."""
    gain, std, z = _z(mean, std, best)
    ei = gain * norm.cdf(z) + std * norm.pdf(z)
    return np.where(std > 0, ei, np.maximum(gain, 0.0))


def probability_of_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """P(y > best) = Phi((mean - best) / std); 1/0 by the sign of mean - best where std == 0.
    mean, std [N] -> score [N] in [0, 1]."""
    gain, std, z = _z(mean, std, best)
    return np.where(std > 0, norm.cdf(z), (gain > 0).astype(np.float64))


def random_scores(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores [n]: selection independent of the model."""
    return rng.random(n)


def acquisition(
    mean,
    std,
    strategy: str,
    maximize: bool = True,
    beta: float = 1.0,
    best: float | None = None,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Score every candidate (higher = test first). mean [N], std [N] or None -> score float64 [N]; NaN where
    the candidate cannot be selected (NaN mean, or NaN std for a strategy that uses std).

    Raises MolgnnError for an unknown strategy, a missing std for ucb/thompson/ei/pi, a missing ``best``
    for ei/pi, or a std of another length than mean / with negative values."""
    if strategy not in STRATEGIES:
        raise MolgnnError(f"unknown selection strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    sign = 1.0 if maximize else -1.0
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if strategy in NEEDS_STD:
        if std is None:
            raise MolgnnError(
                f"strategy {strategy!r} needs a predicted spread (std), and none was given; use an "
                f"ensemble or a model trained with uncertainty, or strategy=greedy/random"
            )
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if std.shape != mean.shape:
            raise MolgnnError(f"strategy {strategy!r}: std has {std.size} values, mean has {mean.size}")
        if np.any(std[~np.isnan(std)] < 0):
            raise MolgnnError(f"strategy {strategy!r}: std has negative values")
    if strategy in NEEDS_BEST and best is None:
        raise MolgnnError(f"strategy {strategy!r} needs the best observed value (best=...)")
    m = sign * mean
    if strategy == "greedy":
        score = greedy(m)
    elif strategy == "ucb":
        score = ucb(m, std, beta)
    elif strategy == "thompson":
        score = thompson(m, np.nan_to_num(std, nan=0.0), rng)
    elif strategy == "ei":
        score = expected_improvement(m, std, sign * float(best))
    elif strategy == "pi":
        score = probability_of_improvement(m, std, sign * float(best))
    else:
        score = random_scores(m.size, rng)
    bad = np.isnan(mean) | (np.isnan(std) if strategy in NEEDS_STD else False)
    return np.where(bad, np.nan, score)


def rank(
    mean,
    std,
    strategy: str,
    k: int,
    maximize: bool = True,
    beta: float = 1.0,
    best: float | None = None,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Indices of the ``k`` candidates to test next, best first: the top-k of ``acquisition(...)``.

    mean [N], std [N] or None -> indices int64 [min(k, number of selectable candidates)]. Ties keep input
    order (stable sort). NaN means are never selected, so fewer than ``k`` indices come back when fewer
    than ``k`` candidates are valid."""
    if int(k) < 0:
        raise MolgnnError(f"k must be >= 0 (got {k})")
    score = acquisition(mean, std, strategy, maximize=maximize, beta=beta, best=best, seed=seed)
    ok = np.flatnonzero(~np.isnan(score))
    order = ok[np.argsort(-score[ok], kind="stable")]
    return order[: int(k)].astype(np.int64)
