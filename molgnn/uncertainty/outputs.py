"""What molgnn-predict writes about uncertainty, for one model or an ensemble.

Per target ``t``: ``t_std`` (the spread), ``t_lower`` / ``t_upper`` (conformal interval at ``level``);
per row: ``domain_score`` (k-NN embedding distance / calibrated threshold; ensembles: the members' mean),
``domain_similarity`` (largest Tanimoto similarity to a training molecule; ensembles: the members' mean)
and ``in_domain`` (domain_score <= 1). Only models whose checkpoints carry a calibration get them.
"""

from __future__ import annotations

import logging

import numpy as np

from molgnn.uncertainty.calibration import Calibration, combine, domain_score, member_spread

log = logging.getLogger(__name__)
ROW_COLUMNS = ("domain_score", "domain_similarity", "in_domain")


def output_columns(targets: list[str], ensemble: bool, calibrated: bool) -> list[str]:
    """Prediction columns in output order."""
    if not calibrated:
        return [f"{c}_{s}" for c in targets for s in ("mean", "std")] if ensemble else list(targets)
    first = "mean" if ensemble else None
    per_target = [f"{c}_{first}" if first else c for c in targets]
    cols = [x for c, m in zip(targets, per_target) for x in (m, f"{c}_std", f"{c}_lower", f"{c}_upper")]
    return cols + list(ROW_COLUMNS)


class EnsembleUncertainty:
    """Turns members' raw outputs (means, variances, distances, similarities) into output columns."""

    def __init__(self, records: list[dict | None]):
        self.records = records
        self.calibrated = all(r is not None for r in records)
        self.calibration = None
        if self.calibrated:
            try:
                self.calibration = Calibration(records)
            except ValueError as exc:
                log.warning("no intervals: %s (train the members on the same split)", exc)

    def values(self, outs: list[dict[str, np.ndarray]], level: float | None) -> np.ndarray:
        """Members' ``predict_full`` outputs (numpy) for G valid molecules -> float [G, len(columns)]."""
        means = [o["mean"] for o in outs]
        if not self.calibrated:
            if len(outs) == 1:
                return means[0]
            mean, std = np.mean(means, axis=0), np.std(means, axis=0)
            return np.stack([mean, std], axis=2).reshape(len(mean), -1)
        sigmas = [
            member_spread(r, o["var"], o["distance"], len(o["mean"])) for r, o in zip(self.records, outs)
        ]
        mean, sigma = combine(means, sigmas)
        score = np.mean([domain_score(r, o["distance"]) for r, o in zip(self.records, outs)], axis=0)
        if self.calibration is not None:
            lower, upper = self.calibration.interval(mean, sigma, score, level)
        else:
            lower = upper = np.full(mean.shape, np.nan)
        per_target = np.stack([mean, sigma, lower, upper], axis=2).reshape(len(mean), -1)
        sim = np.mean([o.get("similarity", np.full(len(mean), np.nan)) for o in outs], axis=0)
        return np.column_stack([per_target, score, sim, (score <= 1.0).astype(np.float64)])
