"""Split conformal prediction intervals (crepes), normalized by a per-molecule spread.

The nonconformity score of a calibration molecule is ``|y - y_hat| / sigma`` (sigma: the model's predicted
spread; 1 for plain split conformal). Intervals are ``y_hat +- q * sigma`` with q the finite-sample
conformal quantile of the calibration scores (crepes ``ConformalRegressor``). The shift-aware variant is
Mondrian: calibration molecules are binned by their applicability-domain score (distance to the training
set) and each new molecule gets the quantile of its own distance bin, so far-from-training molecules get
wider intervals even when the spread estimate does not see the shift.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np


log = logging.getLogger(__name__)

MIN_BIN = 20  # calibration molecules per Mondrian bin below which bins are merged (crepes needs enough)


def _sigma(sigma: np.ndarray | None, n: int) -> np.ndarray:
    if sigma is None:
        return np.ones(n)
    s = np.asarray(sigma, dtype=np.float64)
    return np.clip(np.nan_to_num(s, nan=np.nanmedian(s) if np.isfinite(s).any() else 1.0), 1e-6, None)


def distance_bin_edges(cal_score: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges [n_bins' - 1] of quantile bins of calibration domain scores, with at least MIN_BIN
    molecules per bin (fewer bins when the calibration set is small; no edges = one bin)."""
    score = np.asarray(cal_score, dtype=np.float64)
    n_bins = max(1, min(n_bins, len(score) // MIN_BIN))
    return np.quantile(score, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.zeros(0)


def conformal_interval(
    cal_residual: np.ndarray,
    cal_sigma: np.ndarray | None,
    pred: np.ndarray,
    sigma: np.ndarray | None,
    level: float,
    cal_score: np.ndarray | None = None,
    score: np.ndarray | None = None,
    n_bins: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Intervals for predictions ``pred`` [N] at coverage ``level`` (0 < level < 1).

    cal_residual [M]: y - y_hat on the calibration (validation) molecules (NaN = missing target, ignored);
    cal_sigma [M] / sigma [N]: spreads (None = 1, plain split conformal); cal_score [M] / score [N]:
    domain scores for Mondrian bins (used when n_bins > 1). Returns (lower [N], upper [N]); NaN where pred
    is NaN; +-inf when the calibration set is too small for the level (crepes' convention).
    """
    res = np.asarray(cal_residual, dtype=np.float64)
    keep = np.isfinite(res)
    pred = np.asarray(pred, dtype=np.float64)
    lower, upper = np.full(len(pred), np.nan), np.full(len(pred), np.nan)
    ok = np.isfinite(pred)
    if not keep.any() or not ok.any():
        return lower, upper
    cal_s, new_s = _sigma(cal_sigma, len(res))[keep], _sigma(sigma, len(pred))[ok]
    bins = cal_bins = None
    if n_bins > 1 and cal_score is not None and score is not None:
        edges = distance_bin_edges(np.asarray(cal_score)[keep], n_bins)
        if len(edges):
            cal_bins = np.digitize(np.asarray(cal_score)[keep], edges)
            bins = np.digitize(np.nan_to_num(np.asarray(score)[ok], nan=np.inf), edges)
    with warnings.catch_warnings():  # crepes calls warnings.simplefilter("always", UserWarning) on import:
        from crepes import ConformalRegressor  # keep that out of the user's warning filters; imported when
        # used, so a run without intervals starts 0.8 s sooner
    cr = ConformalRegressor().fit(np.abs(res[keep]), sigmas=cal_s, bins=cal_bins)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = cr.predict_int(pred[ok], sigmas=new_s, bins=bins, confidence=level)
    if any("too small" in str(w.message) for w in caught):  # crepes' warning, said once in molgnn's words
        log.warning(
            "%d calibration molecules%s are too few for %g%% intervals: those intervals are infinite",
            int(keep.sum()),
            " (in some distance bin)" if cal_bins is not None else "",
            100 * level,
        )
    lower[ok], upper[ok] = out[:, 0], out[:, 1]
    return lower, upper
