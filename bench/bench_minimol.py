"""Frozen MiniMol fingerprints + a head against molgnn's D-MPNN from scratch and the best peer, on the 9-set
dev suite (test metric of each set: RMSE for MoleculeNet, MAE for Biogen ADME; 3 seeds).

    python bench/bench_minimol.py --parallel 2
    python bench/bench_minimol.py --scratch-from /path/to/bench_decisions_runs   # reuse default-model runs

Frozen MiniMol: ``encoder=minimol task.freeze_encoder=true task.precompute_embeddings=true`` (needs
``pip install --no-deps minimol==1.3.5``; `make setup` does it). Scratch: the default molgnn-train model;
``--scratch-from`` reuses bench_decisions.py's ``<set>-distance-<seed>`` runs, which are exactly that model
(``uncertainty=distance`` is the default and does not change training). Fine-tuned MiniMol is not in the
table: one fine-tuning epoch of the 10M-parameter network takes over a minute on Lipophilicity on 2 CPU
cores (60 epochs x 27 runs is out of reach without a GPU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import DEV_SUITE, PEERS, dataset_overrides, judged_metric, markdown_table, mean_std, run_train

FROZEN = ["encoder=minimol", "task.freeze_encoder=true", "task.precompute_embeddings=true"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DEV_SUITE), choices=DEV_SUITE)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--scratch-from", default=None, help="folder of bench_decisions runs to reuse")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_minimol_"))
    threads = 1 if args.parallel > 1 else None

    def scratch(d, s):
        reuse = Path(args.scratch_from or "/nonexistent") / f"{d}-distance-{s}" / "metrics.json"
        if reuse.exists():
            return json.loads(reuse.read_text())
        return run_train([*dataset_overrides(d), f"seed={s}"], out / f"{d}-scratch-{s}", threads)

    def one(job):
        d, col, s = job
        if col == "scratch":
            return job, scratch(d, s)
        return job, run_train(
            [*dataset_overrides(d), f"seed={s}", *FROZEN], out / f"{d}-minimol-{s}", threads
        )

    jobs = [
        (d, c, s) for c in ("minimol", "scratch") for d in args.datasets for s in args.seeds
    ]  # scratch last:
    # reused runs of a bench_decisions.py started earlier are then finished
    with ThreadPoolExecutor(args.parallel) as pool:
        res = dict(pool.map(one, jobs))
    rows, wins = [], {"scratch": 0, "peer": 0}
    for d in args.datasets:
        key = judged_metric(d)
        mm = [res[(d, "minimol", s)][key] for s in args.seeds]
        sc = [res[(d, "scratch", s)][key] for s in args.seeds]
        best = PEERS[d]["best"]
        wins["scratch"] += sum(mm) / len(mm) < sum(sc) / len(sc)
        wins["peer"] += sum(mm) / len(mm) < best
        rows.append([d, key.split("/")[1].upper(), mean_std(mm), mean_std(sc), f"{best:.3f}"])
    rows.append(
        [
            "frozen MiniMol better",
            "",
            f"than scratch on {wins['scratch']} of {len(args.datasets)}",
            "",
            f"than the best peer on {wins['peer']} of {len(args.datasets)}",
        ]
    )
    text = markdown_table(
        ["set", "metric", "frozen MiniMol + head", "molgnn D-MPNN scratch", "best peer"], rows
    )
    print(text)
    (out / "minimol.md").write_text(text + "\n")
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
