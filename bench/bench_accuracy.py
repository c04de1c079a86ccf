"""Accuracy of the default from-scratch model: scaffold-split test RMSE, mean ± std over seeds.

    python bench/bench_accuracy.py [--datasets esol freesolv lipophilicity] [--seeds 0 1 2] [--parallel 2]
    python bench/bench_accuracy.py --extra encoder=gine   # any Hydra overrides for every run

Runs can go two at a time (--parallel 2, one thread each); time per epoch is only comparable with --parallel 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import DATASETS, markdown_table, mean_std, run_train, scaffold_overrides

REFERENCE = {"esol": "0.823 (0.815/0.817/0.837)", "freesolv": "2.46", "lipophilicity": "0.718"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument(
        "--out",
        default=None,
        help="directory for run outputs (default: a temp dir); runs "
        "already there are reused, so an interrupted benchmark continues",
    )
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="molgnn-acc-"))
    jobs = [(d, s) for d in args.datasets for s in args.seeds]
    threads = 1 if args.parallel > 1 else None

    def one(job):
        d, s = job
        return job, run_train([*scaffold_overrides(d), f"seed={s}", *args.extra], out / f"{d}-{s}", threads)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = dict(pool.map(one, jobs))
    rows = []
    for d in args.datasets:
        ms = [results[(d, s)] for s in args.seeds]
        rows.append(
            [
                d,
                mean_std([m["test/rmse"] for m in ms]),
                mean_std([m["test/mae"] for m in ms]),
                f"{statistics.median(m.get('time/epoch_median_s', float('nan')) for m in ms):.2f}",
                f"{statistics.median(m['epochs'] for m in ms):.0f}",
                REFERENCE.get(d, ""),
            ]
        )
    print(f"overrides: {args.extra or '(defaults)'}; seeds {args.seeds}; outputs in {out}")
    print(
        markdown_table(
            ["dataset (scaffold)", "test RMSE", "test MAE", "s/epoch (median)", "epochs", "Chemprop v2 RMSE"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
