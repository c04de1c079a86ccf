"""Are molgnn's uncertainties trustworthy? Coverage of conformal intervals, rank correlation of spread with
error, and error against distance to the training set, on the 9-set dev suite (test splits, 3 seeds).

    python bench/bench_decisions.py --parallel 2                       # 9 sets x 3 seeds x (distance, mve)
    python bench/bench_decisions.py --datasets esol --seeds 0 --epochs 5     # quick check

Per (set, seed) two molgnn-train runs: ``uncertainty=distance`` (the default model, MSE loss; its
calibration.json also scores plain split conformal and the shift-aware Mondrian variant on the same model)
and ``uncertainty=mve`` (beta-NLL head). Deep ensembles: the 3 seeds' checkpoints of each kind, predicted
with molgnn-predict (library call) on the test molecules. Everything is calibrated on the validation split
only; the test split is scored once. Finished runs in --out are reused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import DEV_SUITE, ROOT, dataset_overrides, judged_metric, markdown_table, mean_std, run_train

ESTIMATORS = ("conformal", "distance", "distance+mondrian", "mve", "mve+mondrian")
SIZE_ORDER = (
    "lipophilicity",
    "adme_hlm",
    "adme_rlm",
    "adme_mdr1_er",
    "adme_sol",
    "adme_hppb",
    "esol",
    "adme_rppb",
    "freesolv",
)


def run_all(args, out: Path) -> dict:
    # every set's distance runs first (they give conformal, distance, Mondrian and the ensemble), largest set
    # first; then the mve runs, smallest set first (an interrupted run leaves the most sets complete)
    by_size = sorted(args.datasets, key=SIZE_ORDER.index)
    jobs = [(d, "distance", s) for d in by_size for s in args.seeds]
    jobs += [(d, "mve", s) for d in reversed(by_size) for s in args.seeds]
    epochs = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []

    def one(job):
        d, m, s = job
        run_dir = out / f"{d}-{m}-{s}"
        metrics = run_train(
            [*dataset_overrides(d), f"seed={s}", f"uncertainty={m}", *epochs],
            run_dir,
            1 if args.parallel > 1 else None,
        )
        return job, {
            "metrics": metrics,
            "calibration": json.loads((run_dir / "calibration.json").read_text()),
            "dir": run_dir,
        }

    with ThreadPoolExecutor(args.parallel) as pool:
        return dict(pool.map(one, jobs))


def finished_runs(out: Path, args) -> dict:
    """The runs of ``out`` that finished (metrics.json and calibration.json written), as ``run_all`` returns."""
    found = {}
    for d in args.datasets:
        for m in ("distance", "mve"):
            for s in args.seeds:
                run_dir = out / f"{d}-{m}-{s}"
                if (run_dir / "metrics.json").exists() and (run_dir / "calibration.json").exists():
                    found[(d, m, s)] = {
                        "metrics": json.loads((run_dir / "metrics.json").read_text()),
                        "calibration": json.loads((run_dir / "calibration.json").read_text()),
                        "dir": run_dir,
                    }
    return found


def estimator_metrics(results: dict, d: str, s: int) -> dict[str, dict]:
    """Test metrics of every single-model estimator for one (set, seed) whose runs exist."""
    out = {}
    for method in ("distance", "mve"):
        if (d, method, s) not in results:
            continue
        cal = results[(d, method, s)]["calibration"]
        out[method] = cal["metrics"]
        for name, metrics in cal["variants"].items():
            out.setdefault(name, metrics)
    return out


def ensemble_metrics(results: dict, d: str, method: str, seeds: list[int]) -> dict[str, float]:
    """Deep ensemble of the seeds' checkpoints on the test molecules (molgnn.cli.ensemble, as
    ``uncertainty=ensemble`` reports it), with the set's judged accuracy metric as ``accuracy``."""
    from molgnn.cli.ensemble import ensemble_test_metrics

    runs = [results[(d, method, s)]["dir"] for s in seeds]
    out = ensemble_test_metrics(
        [str(r / "checkpoints" / "best.ckpt") for r in runs], runs[0] / "test_predictions.csv"
    )
    return {**out, "accuracy": out[judged_metric(d)]}


def fmt(values: list[float]) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return mean_std(vals) if vals else "-"


def tables(results: dict, datasets: list[str], seeds: list[int]) -> str:
    per = {(d, s): estimator_metrics(results, d, s) for d in datasets for s in seeds}
    ens = {
        (d, m): ensemble_metrics(results, d, m, seeds)
        for d in datasets
        for m in ("distance", "mve")
        if all((d, m, s) in results for s in seeds)
    }

    def vals(d, e, key):
        return [per[(d, s)][e][key] for s in seeds if e in per[(d, s)]]

    def ens_cell(d, m, key):
        return f"{ens[(d, m)][key]:.3f}" if (d, m) in ens else "-"

    n = len(seeds)
    rows, inside = [], dict.fromkeys([*ESTIMATORS, "ensemble", "ensemble mve"], 0)
    for d in datasets:
        row = [d]
        for e in ESTIMATORS:
            row.append(fmt(vals(d, e, "test/coverage90")))
            inside[e] += (
                bool(vals(d, e, "test/coverage90")) and 0.87 <= np.mean(vals(d, e, "test/coverage90")) <= 0.93
            )
        for m, name in (("distance", "ensemble"), ("mve", "ensemble mve")):
            row.append(ens_cell(d, m, "test/coverage90"))
            inside[name] += (d, m) in ens and 0.87 <= ens[(d, m)]["test/coverage90"] <= 0.93
        rows.append(row)
    rows.append(["sets within 0.87-0.93", *(f"{v} of {len(datasets)}" for v in inside.values())])
    t1 = markdown_table(["set", *ESTIMATORS, f"ensemble ({n} seeds)", f"ensemble mve ({n} seeds)"], rows)
    rows, positive = [], dict.fromkeys(["distance", "mve", "ensemble", "ensemble mve", "tanimoto"], 0)
    for d in datasets:
        sp = {
            "distance": vals(d, "distance", "test/spearman_spread_error"),
            "mve": vals(d, "mve", "test/spearman_spread_error"),
            "tanimoto": vals(d, "distance", "test/spearman_similarity_error"),
        }
        for k, v in sp.items():
            positive[k] += bool(v) and np.mean(v) > 0
        for m, k in (("distance", "ensemble"), ("mve", "ensemble mve")):
            positive[k] += (d, m) in ens and ens[(d, m)]["test/spearman_spread_error"] > 0
        rows.append(
            [
                d,
                fmt(sp["distance"]),
                fmt(sp["mve"]),
                ens_cell(d, "distance", "test/spearman_spread_error"),
                ens_cell(d, "mve", "test/spearman_spread_error"),
                fmt(sp["tanimoto"]),
                fmt(vals(d, "distance", "test/miscalibration_area")),
                fmt(vals(d, "mve", "test/miscalibration_area")),
            ]
        )
    rows.append(
        [
            "sets with Spearman > 0",
            *(
                f"{positive[k]} of {len(datasets)}"
                for k in ("distance", "mve", "ensemble", "ensemble mve", "tanimoto")
            ),
            "",
            "",
        ]
    )
    t2 = markdown_table(
        [
            "set",
            "distance",
            "mve",
            "ensemble",
            "ensemble mve",
            "1 - Tanimoto (distance runs)",
            "miscal. area distance",
            "miscal. area mve",
        ],
        rows,
    )
    rows, grows = [], 0
    for d in datasets:
        acc = {
            m: [results[(d, m, s)]["metrics"][judged_metric(d)] for s in seeds if (d, m, s) in results]
            for m in ("distance", "mve")
        }
        near, far = (
            vals(d, "distance", "test/mae_nearest_quartile"),
            vals(d, "distance", "test/mae_farthest_quartile"),
        )
        grows += np.mean(far) > np.mean(near)
        rows.append(
            [
                d,
                judged_metric(d),
                fmt(acc["distance"]),
                fmt(acc["mve"]),
                ens_cell(d, "distance", "accuracy"),
                fmt(near),
                fmt(far),
                fmt(vals(d, "distance", "test/in_domain_fraction")),
            ]
        )
    rows.append([f"farthest > nearest on {grows} of {len(datasets)}", "", "", "", "", "", "", ""])
    t3 = markdown_table(
        [
            "set",
            "metric",
            "MSE model",
            "MVE model",
            f"ensemble ({n} MSE)",
            "MAE nearest quartile",
            "MAE farthest quartile",
            "test in domain",
        ],
        rows,
    )
    return (
        f"Coverage of 90% conformal intervals on test (mean ± sd over seeds {seeds}):\n\n{t1}\n\n"
        f"Spearman(spread, |error|) on test, and miscalibration area:\n\n{t2}\n\n"
        f"Accuracy, and |error| by domain-distance quartile (distance runs):\n\n{t3}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DEV_SUITE), choices=DEV_SUITE)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", default=None, help="run folder (reused); default: a temp dir")
    parser.add_argument("--report-only", action="store_true", help="tables from the finished runs in --out")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_decisions_"))
    results = finished_runs(out, args) if args.report_only else run_all(args, out)
    text = tables(results, args.datasets, args.seeds)
    print(text)
    (out / "decisions.md").write_text(text)
    print(f"runs and decisions.md in {out} (repository: {ROOT})")


if __name__ == "__main__":
    main()
