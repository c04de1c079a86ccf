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
SIZE_ORDER = ("lipophilicity", "adme_hlm", "adme_rlm", "adme_mdr1_er", "adme_sol", "adme_hppb", "esol",
              "adme_rppb", "freesolv")


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
        metrics = run_train([*dataset_overrides(d), f"seed={s}", f"uncertainty={m}", *epochs], run_dir,
                            1 if args.parallel > 1 else None)
        return job, {"metrics": metrics, "calibration": json.loads((run_dir / "calibration.json").read_text()),
                     "dir": run_dir}

    with ThreadPoolExecutor(args.parallel) as pool:
        return dict(pool.map(one, jobs))


def estimator_metrics(results: dict, d: str, s: int) -> dict[str, dict]:
    """Test metrics of every single-model estimator for one (set, seed)."""
    out = {}
    for method in ("distance", "mve"):
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
    out = ensemble_test_metrics([str(r / "checkpoints" / "best.ckpt") for r in runs], runs[0] / "test_predictions.csv")
    return {**out, "accuracy": out[judged_metric(d)]}


def fmt(values: list[float]) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return mean_std(vals) if vals else "-"


def tables(results: dict, datasets: list[str], seeds: list[int]) -> str:
    per = {(d, s): estimator_metrics(results, d, s) for d in datasets for s in seeds}
    ens = {(d, m): ensemble_metrics(results, d, m, seeds) for d in datasets for m in ("distance", "mve")}
    cov = lambda d, e: [per[(d, s)][e]["test/coverage90"] for s in seeds]  # noqa: E731
    rows, inside = [], dict.fromkeys([*ESTIMATORS, "ensemble", "ensemble mve"], 0)
    for d in datasets:
        row = [d]
        for e in ESTIMATORS:
            row.append(fmt(cov(d, e)))
            inside[e] += 0.87 <= np.mean(cov(d, e)) <= 0.93
        for m, name in (("distance", "ensemble"), ("mve", "ensemble mve")):
            c = ens[(d, m)]["test/coverage90"]
            row.append(f"{c:.3f}")
            inside[name] += 0.87 <= c <= 0.93
        rows.append(row)
    rows.append(["sets within 0.87-0.93", *(f"{v} of {len(datasets)}" for v in inside.values())])
    t1 = markdown_table(["set", *ESTIMATORS, f"ensemble ({len(seeds)} seeds)", f"ensemble mve ({len(seeds)} seeds)"], rows)
    rows = []
    for d in datasets:
        sp = lambda e, key="test/spearman_spread_error", d=d: fmt([per[(d, s)][e][key] for s in seeds])  # noqa: E731
        rows.append([d, sp("distance"), sp("mve"), f"{ens[(d, 'distance')]['test/spearman_spread_error']:.3f}",
                     f"{ens[(d, 'mve')]['test/spearman_spread_error']:.3f}",
                     sp("distance", "test/spearman_similarity_error"),
                     fmt([per[(d, s)][e]["test/miscalibration_area"] for s in seeds for e in ("distance",)]),
                     fmt([per[(d, s)]["mve"]["test/miscalibration_area"] for s in seeds])])
    t2 = markdown_table(["set", "distance", "mve", "ensemble", "ensemble mve", "1 - Tanimoto (distance runs)",
                         "miscal. area distance", "miscal. area mve"], rows)
    rows = []
    for d in datasets:
        q = lambda m, k, d=d: fmt([per[(d, s)][m][k] for s in seeds])  # noqa: E731
        acc = lambda m, d=d: fmt([results[(d, m, s)]["metrics"][judged_metric(d)] for s in seeds])  # noqa: E731
        rows.append([d, judged_metric(d), acc("distance"), acc("mve"), f"{ens[(d, 'distance')]['accuracy']:.3f}",
                     q("distance", "test/mae_nearest_quartile"), q("distance", "test/mae_farthest_quartile"),
                     q("distance", "test/in_domain_fraction")])
    t3 = markdown_table(["set", "metric", "MSE model", "MVE model", f"ensemble ({len(seeds)} MSE)", "MAE nearest quartile",
                         "MAE farthest quartile", "test in domain"], rows)
    return (f"Coverage of 90% conformal intervals on test (mean ± sd over seeds {seeds}):\n\n{t1}\n\n"
            f"Spearman(spread, |error|) on test, and miscalibration area:\n\n{t2}\n\n"
            f"Accuracy, and |error| by domain-distance quartile (distance runs):\n\n{t3}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DEV_SUITE), choices=DEV_SUITE)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", default=None, help="run folder (reused); default: a temp dir")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_decisions_"))
    results = run_all(args, out)
    text = tables(results, args.datasets, args.seeds)
    print(text)
    (out / "decisions.md").write_text(text)
    print(f"runs and decisions.md in {out} (repository: {ROOT})")


if __name__ == "__main__":
    main()
