"""How good are a model's spreads and intervals? Coverage, miscalibration area, rank correlation of spread
with error, and error against domain distance, on held-out molecules (numpy in, floats out)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from molgnn.uncertainty.conformal import conformal_interval

LEVELS = (0.8, 0.9, 0.95)


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Fraction of finite y [N] inside [lower, upper]."""
    ok = np.isfinite(y) & ~np.isnan(lower)
    return float(np.mean((y[ok] >= lower[ok]) & (y[ok] <= upper[ok]))) if ok.any() else float("nan")


def miscalibration_area(
    cal: dict,
    y: np.ndarray,
    pred: np.ndarray,
    sigma: np.ndarray | None,
    levels: np.ndarray | None = None,
    **mondrian,
) -> float:
    """Mean |observed - expected coverage| of the conformal intervals over levels 0.05..0.95 (the area
    between the calibration curve and the diagonal). ``cal``: {"residual", "sigma"} of the calibration set."""
    levels = np.arange(0.05, 0.96, 0.05) if levels is None else levels
    gaps = [
        abs(coverage(y, *conformal_interval(cal["residual"], cal["sigma"], pred, sigma, p, **mondrian)) - p)
        for p in levels
    ]
    return float(np.nanmean(gaps))


def spread_error_spearman(abs_err: np.ndarray, spread: np.ndarray | None) -> float:
    """Spearman rank correlation of the spread [N] with |error| [N] (NaN without a spread)."""
    if spread is None:
        return float("nan")
    ok = np.isfinite(abs_err) & np.isfinite(spread)
    if ok.sum() < 3 or np.ptp(spread[ok]) == 0:
        return float("nan")
    return float(spearmanr(spread[ok], abs_err[ok]).statistic)


def error_by_distance_quartile(abs_err: np.ndarray, distance: np.ndarray) -> list[float]:
    """Mean |error| in each quartile of domain distance, nearest first: [4] floats."""
    ok = np.isfinite(abs_err) & np.isfinite(distance)
    if ok.sum() < 4:
        return [float("nan")] * 4
    edges = np.quantile(distance[ok], [0.25, 0.5, 0.75])
    q = np.digitize(distance[ok], edges)
    return [float(abs_err[ok][q == i].mean()) if (q == i).any() else float("nan") for i in range(4)]
