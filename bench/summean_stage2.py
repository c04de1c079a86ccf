"""Stage 2 of the `sum+mean` candidate's rule (bench/results/distill.md, "Candidate recipe: pretrain through
`sum+mean`"), from the committed ledgers; trains nothing. Validation only, pooled over pretraining seeds x
fine-tuning seeds, against the default 10-epoch recipe:

    python bench/summean_stage2.py                       # ledgers in bench/results/runs
    python bench/summean_stage2.py --runs /work/bench_runs   # a bench still writing its --out folders

Fine-tuned reference: the default recipe's pooled validation column of distill.md ("Ten epochs, pretraining
seed 2"; its seed-0 runs predate the ledgers). Frozen reference: ledgers runs/pt10s{0,1,2}fh.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from common import DEV_SUITE, judged_metric

LEDGERS = Path(__file__).parent / "results" / "runs"
DEFAULT_FINETUNED_VAL = dict(esol=0.849, freesolv=2.398, lipophilicity=0.599, adme_hlm=0.345, adme_rlm=0.404,
                             adme_mdr1_er=0.360, adme_sol=0.349, adme_hppb=0.357, adme_rppb=0.343)  # fmt: skip
DEFAULT_FROZEN = [("pt10s0fh", "dmpnn_minimol_distill10-fh")] + [
    (f"pt10s{s}fh", f"dmpnn_minimol_distill10_s{s}-fh") for s in (1, 2)
]


def pooled_val(runs: Path, columns: list[tuple[str, str]], d: str) -> tuple[float, int]:
    """Mean validation metric of set d over every finished run of the (folder, run name) columns, and n."""
    key = judged_metric(d).replace("test/", "val/")
    values = [
        json.loads(p.read_text())[key]
        for folder, name in columns
        for s in range(3)
        if (p := runs / folder / f"{d}-{name}-{s}" / "metrics.json").exists()
    ]
    return (statistics.mean(values) if values else math.nan), len(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=LEDGERS, help="folder holding the pt10sm_s* run folders")
    args = parser.parse_args()
    cand = "dmpnn_minimol_distill10_summean_s{}"
    finetuned = [(f"pt10sm_s{s}", cand.format(s) + "-finetuned") for s in range(3)]
    frozen = [(f"pt10sm_s{s}fh", cand.format(s) + "-fh") for s in range(3)]
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
