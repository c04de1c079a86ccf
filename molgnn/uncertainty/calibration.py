"""A head's calibration record (stored in the checkpoint header) and what prediction makes of it.

Record (primitives only, ``header["heads"][i]["calibration"]``)::

    {"version": 1, "settings": UncertaintySettings.to_dict(),
     "valid": {"rows": [M], "y": [M][T], "pred": [M][T], "sigma": [M][T] | None, "distance": [M]},
     "domain": fit_threshold(...) (standardized-error units), "target_std": [T]}

Spread sigma [N, T] in original units, by method: ``mve`` the predicted std; ``distance`` the isotonic
validation error expected at the molecule's embedding distance (x the target's std); ``conformal`` 1
(plain split conformal). Ensembles: sigma^2 = mean of members' sigma^2 + variance of their means.
"""

from __future__ import annotations

import numpy as np

from molgnn.uncertainty.conformal import conformal_interval

VERSION = 1


def member_spread(record: dict, var: np.ndarray | None, distance: np.ndarray | None, n: int) -> np.ndarray:
    """One model's spread sigma [N, T] (original units) from its head's variance [N, T] and distances [N]."""
    method = record["settings"]["method"]
    t = len(record["target_std"])
    if method == "mve" and var is not None:
        return np.sqrt(np.clip(var, 0, None))
    if method == "distance" and distance is not None and record["domain"]["knots_x"]:
        dom = record["domain"]
        floor = 1e-3 * max(dom["in_domain_error"], 1e-6)
        expected = np.clip(np.interp(distance, dom["knots_x"], dom["knots_y"]), floor, None)
        return expected[:, None] * np.asarray(record["target_std"])[None, :]
    return np.ones((n, t))


def combine(means: list[np.ndarray], sigmas: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
    """Members' means [N, T] and spreads [N, T] (None = no spread) -> ensemble mean [N, T], spread [N, T]."""
    mean = np.mean(means, axis=0)
    if len(means) == 1:
        return mean, sigmas[0]
    within = np.mean([s**2 if s is not None else np.zeros_like(mean) for s in sigmas], axis=0)
    return mean, np.sqrt(within + np.var(means, axis=0))


def domain_score(record: dict, distance: np.ndarray) -> np.ndarray:
    """Embedding distance [N] -> distance / calibrated threshold [N] (<= 1: in domain)."""
    return np.asarray(distance, dtype=np.float64) / record["domain"]["threshold"]


class Calibration:
    """The calibration of one model or of an ensemble whose members share their validation molecules.

    ``valid_residual`` [M, T], ``valid_sigma`` [M, T], ``valid_score`` [M]: the calibration set as the
    (ensemble) model sees it. ``interval(pred [N, T], sigma [N, T], score [N], level)`` -> lower, upper.
    """

    def __init__(self, records: list[dict]):
        self.records = records
        rows = [tuple(r["valid"]["rows"]) for r in records]
        if any(r != rows[0] for r in rows):
            raise ValueError("ensemble members were calibrated on different validation molecules")
        y = np.asarray(records[0]["valid"]["y"], dtype=np.float64)
        means = [np.asarray(r["valid"]["pred"], dtype=np.float64) for r in records]
        sigmas = [self._valid_sigma(r) for r in records]
        mean, sigma = combine(means, sigmas)
        self.valid_residual = y - mean
        self.valid_sigma = sigma if sigma is not None else np.ones_like(mean)
        self.valid_score = np.mean([domain_score(r, r["valid"]["distance"]) for r in records], axis=0)
        settings = records[0]["settings"]
        self.level, self.mondrian_bins = settings["level"], settings["mondrian_bins"]

    @staticmethod
    def _valid_sigma(record: dict) -> np.ndarray:
        v = record["valid"]
        var = None if v["sigma"] is None else np.asarray(v["sigma"], dtype=np.float64) ** 2
        return member_spread(record, var, np.asarray(v["distance"], dtype=np.float64), len(v["rows"]))

    def interval(
        self, pred: np.ndarray, sigma: np.ndarray, score: np.ndarray, level: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conformal intervals for pred [N, T] -> (lower [N, T], upper [N, T])."""
        level = self.level if level is None else level
        lower, upper = np.full(pred.shape, np.nan), np.full(pred.shape, np.nan)
        for t in range(pred.shape[1]):
            lower[:, t], upper[:, t] = conformal_interval(
                self.valid_residual[:, t],
                self.valid_sigma[:, t],
                pred[:, t],
                sigma[:, t],
                level,
                cal_score=self.valid_score,
                score=score,
                n_bins=self.mondrian_bins,
            )
        return lower, upper
