"""``uncertainty=ensemble``: train the members one after the other, write one ensemble file, report the
ensemble's accuracy and calibration on the test split."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from molgnn.checkpoint import write_ensemble
from molgnn.cli.report import write_json
from molgnn.uncertainty.metrics import LEVELS, coverage, error_by_distance_quartile, spread_error_spearman

log = logging.getLogger(__name__)


def train_ensemble(cfg: DictConfig, out_dir: Path, train_one) -> dict[str, float]:
    """Members i = 0..M-1 into ``out_dir/members/<i>`` (seed + i, the run's split, ``member_method``), then
    ``out_dir/checkpoints/ensemble.ckpt`` and the ensemble's test metrics (metrics.json, calibration.json)."""
    paths = []
    for i in range(cfg.uncertainty.members):
        member = OmegaConf.to_container(cfg, resolve=False)
        member["seed"] = int(cfg.seed) + i
        if "seed" in cfg.split:  # every member sees the same split (shared validation = shared calibration)
            member["split"]["seed"] = int(cfg.split.seed)
        member["uncertainty"]["method"] = cfg.uncertainty.member_method
        train_one(OmegaConf.create(member), out_dir / "members" / str(i))
        paths.append(out_dir / "members" / str(i) / "checkpoints" / "best.ckpt")
    missing = [p for p in paths if not p.exists()]
    if missing:
        log.warning("no best checkpoint for %s (callbacks off?): no ensemble file", missing[0])
        return {}
    ensemble = write_ensemble(paths, out_dir / "checkpoints" / "ensemble.ckpt")
    metrics = ensemble_test_metrics(ensemble, out_dir / "members" / "0" / "test_predictions.csv")
    write_json(metrics, out_dir / "metrics.json")
    write_json({"metrics": metrics, "members": [str(p) for p in paths]}, out_dir / "calibration.json")
    log.info(
        "ensemble of %d -> %s; test: %s", len(paths), ensemble, {k: round(v, 3) for k, v in metrics.items()}
    )
    return metrics


def ensemble_test_metrics(ckpt: str | Path | list, test_predictions: Path) -> dict[str, float]:
    """Predict the test molecules of ``test_predictions`` (a run's test_predictions.csv: smiles, <t> measured)
    with an ensemble (file or list of checkpoints); accuracy of the mean and calibration, pooled over targets."""
    from molgnn.predict import predict_file

    test = pd.read_csv(test_predictions)
    targets = [c for c in test.columns if c not in ("row", "smiles") and not c.endswith("_pred")]
    y = test[targets].to_numpy(dtype=np.float64)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "test.csv"
        test[["smiles"]].to_csv(src, index=False)
        for level in LEVELS:
            predict_file(ckpt, src, Path(tmp) / "p.csv", progress=False, num_workers=0, interval_level=level)
            pred = pd.read_csv(Path(tmp) / "p.csv")
            lower, upper = (pred[[f"{t}_{b}" for t in targets]].to_numpy() for b in ("lower", "upper"))
            out[f"test/coverage{round(level * 100)}"] = coverage(y.ravel(), lower.ravel(), upper.ravel())
    mean, std = (pred[[f"{t}_{s}" for t in targets]].to_numpy() for s in ("mean", "std"))
    err = np.abs(y - mean)
    ok = np.isfinite(err)
    score = np.repeat(pred["domain_score"].to_numpy()[:, None], len(targets), axis=1)
    quart = error_by_distance_quartile(err[ok], score[ok])
    out.update(
        {
            "test/rmse": float(np.sqrt(np.mean(err[ok] ** 2))),
            "test/mae": float(np.mean(err[ok])),
            "test/spearman_spread_error": spread_error_spearman(err[ok], std[ok]),
            "test/mae_nearest_quartile": quart[0],
            "test/mae_farthest_quartile": quart[3],
            "test/in_domain_fraction": float(pred["in_domain"].mean()),
        }
    )
    return out
