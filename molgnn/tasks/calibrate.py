"""After training: calibrate the trained model's uncertainty on the validation split, index the training
split for applicability-domain scores, and evaluate both on the test split.

    train rows -> embeddings h [N, d] + Morgan bits -> DomainIndex
    (Morgan bits are read by row from the data module, computed by the featurization engine from the one
    parse of each SMILES; only a data module without them makes ``fingerprints`` parse again)
    valid rows -> mean, spread, distance -> calibration record (molgnn.uncertainty.calibration)
    test rows  -> intervals, coverage, spread/error rank correlation, error by distance quartile
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from molgnn.chem.parse import parse_smiles
from molgnn.data.loader import graph_loader
from molgnn.uncertainty.calibration import VERSION, Calibration, domain_score, member_spread
from molgnn.uncertainty.domain import DomainIndex, fit_threshold, morgan_bits
from molgnn.uncertainty.metrics import (
    LEVELS,
    coverage,
    error_by_distance_quartile,
    miscalibration_area,
    spread_error_spearman,
)
from molgnn.uncertainty.settings import UncertaintySettings

log = logging.getLogger(__name__)


@dataclass
class SplitLoader:
    """Batches of one split + the data module's packed Morgan bits by row, uint8 [R, FP_BITS / 8] (None
    when the data module has none), which ``collect`` picks out for the rows it sees."""

    batches: Iterable
    fingerprints: torch.Tensor | None = None

    def __iter__(self) -> Iterator:
        return iter(self.batches)


def _loader(datamodule, key: str) -> SplitLoader:
    """Unshuffled loader over one split, graphs or precomputed embeddings alike."""
    if hasattr(datamodule, "embedded"):
        batches = datamodule.loader(key, shuffle=False)
    else:
        batches = graph_loader(datamodule.datasets[key], max(256, datamodule.batch_size), False, 0, False)
    return SplitLoader(batches, getattr(datamodule, "fingerprints", None))


@torch.no_grad()
def collect(task, loader) -> dict[str, np.ndarray]:
    """Run the task over a loader -> rows [N], h [N, d], y / mean [N, T] and var [N, T] (original units;
    var NaN without a variance head), + fp uint8 [N, FP_BITS / 8] when the loader carries fingerprints."""
    out: dict[str, list] = {"row": [], "h": [], "y": [], "mean": [], "var": []}
    device = next(task.parameters()).device
    for batch in loader:
        batch = batch.to(device)
        h = task.embed(batch)
        mean, var = task.head_outputs(task.features(batch, h))
        out["row"].append(batch.row.cpu())
        out["h"].append(h.float().cpu())
        out["y"].append(batch.y.float().cpu())
        out["mean"].append(task.scaler.inverse(mean).float().cpu())
        out["var"].append(
            torch.full_like(mean, float("nan")) if var is None else (var * task.scaler.std**2).cpu()
        )
    result = {k: torch.cat(v).numpy() for k, v in out.items()}
    if getattr(loader, "fingerprints", None) is not None:
        result["fp"] = loader.fingerprints.numpy()[result["row"]]
    return result


def fingerprints(smiles: list[str]) -> torch.Tensor:
    """Packed Morgan fingerprints uint8 [N, FP_BITS / 8] of valid SMILES, parsed here: the fallback for
    outputs whose data module keeps no fingerprints (``MoleculeDataModule(fingerprints=False)``, another
    kind of data module, a plain loader passed to ``collect``)."""
    log.info("no fingerprints from the data module: parsing %d SMILES for Morgan bits", len(smiles))
    return torch.from_numpy(np.stack([morgan_bits(parse_smiles(s)) for s in smiles]))


def row_fingerprints(out: dict, smiles: list[str], keep: np.ndarray | None = None) -> torch.Tensor:
    """Packed Morgan bits uint8 [N, FP_BITS / 8] of ``collect`` outputs' rows (``keep``: indices into them):
    ``out["fp"]`` when the data module supplied it, else parsed from ``smiles`` (all rows of the table)."""
    keep = np.arange(len(out["row"])) if keep is None else keep
    if "fp" in out:
        return torch.from_numpy(out["fp"][keep])
    return fingerprints([smiles[r] for r in out["row"][keep]])


def build_domain(task, datamodule, settings: UncertaintySettings) -> DomainIndex:
    """Domain index of (at most ``max_domain_molecules``, seeded sample of) the training molecules."""
    train = collect(task, _loader(datamodule, "train"))
    keep = np.arange(len(train["row"]))
    if len(keep) > settings.max_domain_molecules:
        keep = np.sort(np.random.default_rng(0).choice(keep, settings.max_domain_molecules, replace=False))
    return DomainIndex(
        torch.from_numpy(train["h"][keep]),
        row_fingerprints(train, datamodule.smiles, keep),
        settings.domain_k,
    )


def calibration_record(task, datamodule, settings: UncertaintySettings, domain: DomainIndex) -> dict:
    """Validation outputs + the domain-distance calibration, as primitives for the checkpoint header."""
    val = collect(task, _loader(datamodule, "valid"))
    distance = domain.distance(torch.from_numpy(val["h"])).numpy()
    std = task.scaler.std.cpu().numpy()
    abs_err = np.nanmean(np.abs(val["y"] - val["mean"]) / std, axis=1)
    has_var = settings.mve
    return {
        "version": VERSION,
        "settings": settings.to_dict(),
        "target_std": std.tolist(),
        "domain": fit_threshold(distance, abs_err, settings.domain_tolerance),
        "valid": {
            "rows": val["row"].tolist(),
            "y": val["y"].tolist(),
            "pred": val["mean"].tolist(),
            "sigma": np.sqrt(val["var"]).tolist() if has_var else None,
            "distance": distance.tolist(),
        },
    }


def with_uncertainty(outputs: dict, record: dict, domain: DomainIndex, level: float) -> dict:
    """``collect`` outputs plus distance, score [N], sigma, lower/upper [N, T] under ``record``'s estimator
    (a new dict; ``outputs`` is not changed, so one pass over the data serves several estimators)."""
    out = dict(outputs)
    out["distance"] = domain.distance(torch.from_numpy(out["h"])).numpy()
    out["score"] = domain_score(record, out["distance"])
    var = out["var"] if record["settings"]["method"] == "mve" else None
    out["sigma"] = member_spread(record, var, out["distance"], len(out["row"]))
    out["lower"], out["upper"] = Calibration([record]).interval(
        out["mean"], out["sigma"], out["score"], level
    )
    return out


def evaluate(out: dict, record: dict, smiles: list[str], domain: DomainIndex) -> dict[str, float]:
    """Test-split uncertainty metrics (pooled over targets): coverage at 80/90/95%, miscalibration area,
    Spearman(spread, |error|), |error| in the nearest / farthest distance quartile, in-domain share."""
    cal = Calibration([record])
    y, mean, sigma = out["y"].ravel(), out["mean"].ravel(), out["sigma"].ravel()
    t = out["mean"].shape[1]
    score = np.repeat(out["score"], t)
    metrics = {}
    for level in LEVELS:
        lower, upper = cal.interval(out["mean"], out["sigma"], out["score"], level)
        metrics[f"test/coverage{round(level * 100)}"] = coverage(y, lower.ravel(), upper.ravel())
    metrics["test/miscalibration_area"] = float(
        np.mean(
            [
                miscalibration_area(
                    {"residual": cal.valid_residual[:, j], "sigma": cal.valid_sigma[:, j]},
                    out["y"][:, j],
                    out["mean"][:, j],
                    out["sigma"][:, j],
                    cal_score=cal.valid_score,
                    score=out["score"],
                    n_bins=cal.mondrian_bins,
                )
                for j in range(t)
            ]
        )
    )
    abs_err = np.abs(y - mean)
    method = record["settings"]["method"]
    metrics["test/spearman_spread_error"] = (
        spread_error_spearman(abs_err, sigma) if method != "conformal" else float("nan")
    )
    quart = error_by_distance_quartile(abs_err, score)
    metrics["test/mae_nearest_quartile"], metrics["test/mae_farthest_quartile"] = quart[0], quart[3]
    metrics["test/in_domain_fraction"] = float(np.mean(out["score"] <= 1.0))
    if "similarity" not in out:
        out["similarity"] = domain.similarity(row_fingerprints(out, smiles)).numpy()
    metrics["test/spearman_similarity_error"] = spread_error_spearman(
        np.nanmean(np.abs(out["y"] - out["mean"]), axis=1), -out["similarity"]
    )
    return metrics
