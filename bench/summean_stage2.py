"""Stage 2 of the `sum+mean` candidate's rule (bench/results/distill.md, "Candidate recipe: pretrain through
`sum+mean`"), from the committed ledgers; trains nothing. Validation only, pooled over pretraining seeds x
fine-tuning seeds, against the default 10-epoch recipe:

    python bench/summean_stage2.py                       # ledgers in bench/results/runs
    python bench/summean_stage2.py --runs /work/bench_runs   # a bench still writing its --out folders
    python bench/summean_stage2.py --test                  # after the verdict: test, for the issue's bars

Fine-tuned reference: the default recipe's pooled validation column of distill.md ("Ten epochs, pretraining
seed 2"; its seed-0 runs predate the ledgers). Frozen reference: ledgers runs/pt10s{0,1,2}fh.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from common import DEV_SUITE, PEERS, judged_metric

LEDGERS = Path(__file__).parent / "results" / "runs"
DEFAULT_FINETUNED_VAL = dict(esol=0.849, freesolv=2.398, lipophilicity=0.599, adme_hlm=0.345, adme_rlm=0.404,
                             adme_mdr1_er=0.360, adme_sol=0.349, adme_hppb=0.357, adme_rppb=0.343)  # fmt: skip
DEFAULT_FROZEN = [("pt10s0fh", "dmpnn_minimol_distill10-fh")] + [
    (f"pt10s{s}fh", f"dmpnn_minimol_distill10_s{s}-fh") for s in (1, 2)
]


def run_file(runs: Path, folder: str, name: str, d: str, seed: int) -> Path:
    """metrics.json of one bench run: set d, recipe column (folder, run name), fine-tuning seed."""
    return runs / folder / f"{d}-{name}-{seed}" / "metrics.json"


def pooled_val(runs: Path, columns: list[tuple[str, str]], d: str) -> tuple[float, int]:
    """Mean validation metric of set d over every finished run of the (folder, run name) columns, and n."""
    key = judged_metric(d).replace("test/", "val/")
    files = [run_file(runs, folder, name, d, s) for folder, name in columns for s in range(3)]
    values = [json.loads(p.read_text())[key] for p in files if p.exists()]
    return (statistics.mean(values) if values else math.nan), len(values)


def seed_means(runs: Path, columns: list[tuple[str, str]], d: str) -> list[float]:
    """Test metric of set d, one mean over the fine-tuning seeds per (folder, run name) column."""
    key = judged_metric(d)
    return [
        statistics.mean(json.loads(run_file(runs, f, name, d, s).read_text())[key] for s in range(3))
        for f, name in columns
    ]


def print_test(runs: Path, finetuned: list[tuple[str, str]], frozen: list[tuple[str, str]]) -> None:
    """The issue's bars on test, read once after the verdict: fine-tuned against scratch and the best peer
    (pooled 3 x 3 and seed 0's file alone), frozen + head within 10% of scratch and against the random forest."""
    scratch = json.loads((LEDGERS.parent / "scratch_default.json").read_text())
    print(
        "| set | fine-tuned s0 / s1 / s2 | pooled ± sd | frozen s0 / s1 / s2 | pooled | scratch | best peer | RF |"
    )
    print("|---|---|---|---|---|---|---|---|")
    wins = dict(ft_scratch=0, ft_peer=0, s0_scratch=0, s0_peer=0, fz_within=0, fz_rf=0, s0fz_within=0)
    for d in DEV_SUITE:
        ft, fz = seed_means(runs, finetuned, d), seed_means(runs, frozen, d)
        sc, peer, rf = scratch[d]["test"][0], PEERS[d]["best"], PEERS[d]["rf"]
        ftm, fzm = statistics.mean(ft), statistics.mean(fz)
        wins["ft_scratch"] += ftm < sc
        wins["ft_peer"] += ftm < peer
        wins["s0_scratch"] += ft[0] < sc
        wins["s0_peer"] += ft[0] < peer
        wins["fz_within"] += fzm <= 1.1 * sc
        wins["s0fz_within"] += fz[0] <= 1.1 * sc
        wins["fz_rf"] += fzm < rf
        print(f"| {d} | {' / '.join(f'{x:.3f}' for x in ft)} | {ftm:.3f} ± {statistics.stdev(ft):.3f} "
              f"| {' / '.join(f'{x:.3f}' for x in fz)} | {fzm:.3f} | {sc:.3f} | {peer:.3f} | {rf:.3f} |")  # fmt: skip
    print(", ".join(f"{k}: {v} of 9" for k, v in wins.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=LEDGERS, help="folder holding the pt10sm_s* run folders")
    parser.add_argument(
        "--test", action="store_true", help="print test for the issue's bars (after the verdict)"
    )
    args = parser.parse_args()
    cand = "dmpnn_minimol_distill10_summean_s{}"
    finetuned = [(f"pt10sm_s{s}", cand.format(s) + "-finetuned") for s in range(3)]
    frozen = [(f"pt10sm_s{s}fh", cand.format(s) + "-fh") for s in range(3)]
    if args.test:
        print_test(args.runs, finetuned, frozen)
        return
    print(
        "| set | fine-tuned (n runs) | default recipe | ratio | frozen + head (n) | default recipe | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {"fine-tuned": [], "frozen": []}
    for d in DEV_SUITE:
        ft, n_ft = pooled_val(args.runs, finetuned, d)
        fz, n_fz = pooled_val(args.runs, frozen, d)
        ref_fz, _ = pooled_val(LEDGERS, DEFAULT_FROZEN, d)
        ratios["fine-tuned"].append(ft / DEFAULT_FINETUNED_VAL[d])
        ratios["frozen"].append(fz / ref_fz)
        print(f"| {d} | {ft:.3f} ({n_ft}) | {DEFAULT_FINETUNED_VAL[d]:.3f} | {ft / DEFAULT_FINETUNED_VAL[d]:.3f} "
              f"| {fz:.3f} ({n_fz}) | {ref_fz:.3f} | {fz / ref_fz:.3f} |")  # fmt: skip
    for name, r in ratios.items():
        done = [x for x in r if not math.isnan(x)]
        geo = math.exp(statistics.mean(map(math.log, done))) if done else math.nan
        print(f"{name}: better on {sum(x < 1 for x in done)} of {len(done)} sets, geometric mean {geo:.4f}")


if __name__ == "__main__":
    main()
