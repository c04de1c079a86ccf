"""Side-by-side table of finished bench runs (their metrics.json), one column per recipe, with molgnn scratch
and the best peer; for each set the recipe with the lower mean validation metric is chosen and its test
reported (choice on validation only). Trains nothing.

    python bench/table_runs.py \\
        --column "frozen head=bench/results/runs/minimol_fh/{set}-minimol-fh-{seed}" \\
        --column "LP-FT=bench/results/runs/minimol_lpft/{set}-minimol-lpft-{seed}" \\
        --scratch-summary bench/results/scratch_default.json

Each --column is NAME=PATTERN, {set} and {seed} filled in; PATTERN names a run folder holding metrics.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench_encoder import _summary_columns
from common import DEV_SUITE, PEERS, judged_metric, markdown_table, mean_std


def load_column(pattern: str, d: str, seeds: list[int]) -> tuple[list[float], list[float]]:
    """Run folders of one recipe on set d -> (validation values, test values), one per seed."""
    key = judged_metric(d)
    val, test = [], []
    for s in seeds:
        path = Path(pattern.format(set=d, seed=s)) / "metrics.json"
        if not path.exists():
            raise SystemExit(f"missing run: {path} (column pattern {pattern!r}, set {d}, seed {s})")
        m = json.loads(path.read_text())
        val.append(m[key.replace("test/", "val/")])
        test.append(m[key])
    return val, test


def build_rows(columns: dict[str, str], summary: dict, datasets: list[str], seeds: list[int]) -> list[list]:
    """Per set: metric, val per column, val scratch, test per column, test scratch, chosen, best peer."""
    rows, beats = [], {name: 0 for name in [*columns, "chosen on val"]}
    for d in datasets:
        runs = {name: load_column(p, d, seeds) for name, p in columns.items()}
        chosen = min(runs, key=lambda n: statistics.mean(runs[n][0]))
        best = PEERS[d]["best"]
        for name, (_, test) in runs.items():
            beats[name] += statistics.mean(test) < best
        beats["chosen on val"] += statistics.mean(runs[chosen][1]) < best
        scratch_val, scratch_test, _ = _summary_columns(summary[d])
        rows.append(
            [
                d,
                judged_metric(d).split("/")[1].upper(),
                *[mean_std(v) for v, _ in runs.values()],
                scratch_val,
                *[mean_std(t) for _, t in runs.values()],
                scratch_test,
                f"{chosen}: {statistics.mean(runs[chosen][1]):.3f}",
                f"{best:.3f}",
            ]
        )
    n = len(datasets)
    tally = "; ".join(f"{name} {k}/{n}" for name, k in beats.items())
    rows.append(["better than the best peer (test)", "", tally] + [""] * (2 * len(columns) + 3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--column", action="append", required=True, help="NAME=PATTERN")
    parser.add_argument("--scratch-summary", default="bench/results/scratch_default.json")
    parser.add_argument("--datasets", nargs="+", default=list(DEV_SUITE), choices=DEV_SUITE)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    bad = [c for c in args.column if "=" not in c]
    if bad:
        raise SystemExit(f"--column must be NAME=PATTERN, got {bad[0]!r}")
    columns = dict(c.split("=", 1) for c in args.column)
    summary = json.loads(Path(args.scratch_summary).read_text())
    header = ["set", "metric", *[f"val: {n}" for n in columns], "val: scratch"]
    header += [*[f"test: {n}" for n in columns], "test: scratch", "chosen on val: test", "best peer"]
    print(markdown_table(header, build_rows(columns, summary, args.datasets, args.seeds)))


if __name__ == "__main__":
    main()
