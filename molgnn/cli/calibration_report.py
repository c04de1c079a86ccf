"""Run-directory outputs of the uncertainty calibration: calibration.json and calibration.png."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from molgnn.cli.report import write_json

log = logging.getLogger(__name__)


def calibration_plot(out: dict, metrics: dict, path: Path, title: str) -> None:
    """Three panels on the test split: |error| vs spread, |error| vs domain score, interval coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = np.nanmean(np.abs(out["y"] - out["mean"]), axis=1)
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    ax[0].scatter(out["sigma"].mean(axis=1), err, s=8, alpha=0.6)
    ax[0].set(
        xlabel="predicted spread",
        ylabel="|error|",
        title=f"Spearman {metrics.get('test/spearman_spread_error', float('nan')):.2f}",
    )
    ax[1].scatter(out["score"], err, s=8, alpha=0.6)
    ax[1].axvline(1.0, color="k", ls="--", lw=1)
    ax[1].set(
        xlabel="domain score (distance / threshold; > 1 out of domain)",
        ylabel="|error|",
        title="error vs distance to training set",
    )
    levels = [80, 90, 95]
    ax[2].bar(
        [str(x) for x in levels], [metrics[f"test/coverage{x}"] * 100 for x in levels], color="tab:blue"
    )
    ax[2].plot([str(x) for x in levels], levels, "k_", ms=40, mew=2)
    ax[2].set(
        ylim=(0, 100),
        xlabel="nominal coverage (%)",
        ylabel="observed coverage (%)",
        title="conformal intervals (test)",
    )
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_calibration(
    out: dict, metrics: dict, record: dict, variants: dict, out_dir: Path, title: str
) -> None:
    """calibration.json (metrics, settings, domain threshold, other estimators on the same model) and
    calibration.png."""
    summary = {
        "metrics": metrics,
        "settings": record["settings"],
        "variants": variants,
        "domain": {k: record["domain"][k] for k in ("threshold", "in_domain_error", "tolerance")},
    }
    write_json(summary, out_dir / "calibration.json")
    calibration_plot(out, metrics, out_dir / "calibration.png", title)


def variant_records(record: dict) -> dict[str, dict]:
    """The same model's calibration with the other estimators it supports, for comparison: plain split
    conformal, and the shift-aware (Mondrian, 3 domain-distance bins) version of its own method."""
    settings, out = record["settings"], {}
    if settings["method"] != "conformal":
        out["conformal"] = {**record, "settings": {**settings, "method": "conformal", "mondrian_bins": 1}}
    if settings["mondrian_bins"] == 1:
        out[f"{settings['method']}+mondrian"] = {**record, "settings": {**settings, "mondrian_bins": 3}}
    return out


def calibrate_run(task, datamodule, settings, best_path: str | None, out_dir: Path) -> dict[str, float]:
    """Calibrate the (best) trained model, store the calibration in its checkpoint, report it on the test
    split. Returns the test uncertainty metrics ({} when ``uncertainty=none``)."""
    from molgnn.checkpoint import attach_calibration
    from molgnn.tasks.calibrate import (
        _loader,
        build_domain,
        calibration_record,
        collect,
        evaluate,
        with_uncertainty,
    )

    if settings.method == "none":
        return {}
    task.eval()
    domain = build_domain(task, datamodule, settings)
    record = calibration_record(task, datamodule, settings, domain)
    if best_path:
        attach_calibration(best_path, record, domain)
    else:
        log.warning("no best checkpoint (callbacks off?): the calibration is reported but stored nowhere")
    outputs = collect(
        task, _loader(datamodule, "test")
    )  # one pass over the test molecules for every estimator
    test = with_uncertainty(outputs, record, domain, settings.level)
    metrics = evaluate(test, record, datamodule.smiles, domain)
    outputs["similarity"] = test["similarity"]  # Tanimoto does not depend on the estimator
    variants = {
        name: evaluate(with_uncertainty(outputs, rec, domain, settings.level), rec, datamodule.smiles, domain)
        for name, rec in variant_records(record).items()
    }
    write_calibration(test, metrics, record, variants, out_dir, f"{datamodule.name} test ({settings.method})")
    log.info("uncertainty (%s, test): %s", settings.method, {k: round(v, 3) for k, v in metrics.items()})
    return metrics
