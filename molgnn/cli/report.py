"""Run-directory outputs: metrics.json, predictions CSV, parity plot, invalid-row report."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from molgnn.storage import atomic_write

log = logging.getLogger(__name__)


def write_json(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def clean_metrics(*metric_dicts: dict) -> dict[str, float]:
    """Merge Lightning metric dicts into one flat {name: float} (tensors to floats)."""
    out: dict[str, float] = {}
    for metrics in metric_dicts:
        for key, value in metrics.items():
            out[key] = float(value)
    return {k: (v if math.isfinite(v) else None) for k, v in sorted(out.items())}


def write_invalid_rows(invalid: pd.DataFrame, out_dir: Path, source: Path) -> None:
    """``invalid_rows.csv`` (row, line, smiles, reason) plus a one-line count in the log."""
    write_csv(invalid, out_dir / "invalid_rows.csv")
    if len(invalid):
        log.warning(
            "%d invalid row(s) in %s left out (see %s): first: line %d: %s",
            len(invalid),
            source,
            out_dir / "invalid_rows.csv",
            invalid.line.iloc[0],
            invalid.reason.iloc[0],
        )
    else:
        log.info("no invalid rows in %s", source)


def write_predictions(
    rows: np.ndarray,
    smiles: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    target_names: list[str],
    path: Path,
) -> pd.DataFrame:
    """Per-row test predictions: row, smiles, then ``<target>`` and ``<target>_pred`` columns."""
    frame = pd.DataFrame({"row": rows, "smiles": [smiles[r] for r in rows]})
    for j, name in enumerate(target_names):
        frame[name] = y_true[:, j]
        frame[f"{name}_pred"] = y_pred[:, j]
    write_csv(frame, path)
    return frame


def parity_plot(frame: pd.DataFrame, target_names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(target_names), figsize=(4.5 * len(target_names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], target_names):
        true, pred = frame[name].to_numpy(), frame[f"{name}_pred"].to_numpy()
        ok = ~np.isnan(true)
        ax.scatter(true[ok], pred[ok], s=10, alpha=0.6)
        lo, hi = np.nanmin([true[ok].min(), pred[ok].min()]), np.nanmax([true[ok].max(), pred[ok].max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        rmse = float(np.sqrt(np.mean((true[ok] - pred[ok]) ** 2)))
        ax.set(xlabel=f"{name} (measured)", ylabel=f"{name} (predicted)", title=f"{title}: RMSE {rmse:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
