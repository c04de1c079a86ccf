"""Any encoder on the 9-set dev suite, frozen (a head on its embeddings) or fine-tuned, against molgnn's
D-MPNN from scratch and the best peer (RMSE for MoleculeNet, MAE for Biogen ADME; validation and test side by
side; 3 seeds).

    python bench/bench_encoder.py --encoder minimol --parallel 2                 # frozen MiniMol fingerprints
    python bench/bench_encoder.py --encoder models/pretrained/dmpnn_gpu1024.pt   # a molgnn encoder file, frozen
    python bench/bench_encoder.py --encoder models/pretrained/x.pt --finetune    # ... fine-tuned
    python bench/bench_encoder.py --scratch-from /path/to/bench_decisions_runs   # reuse default-model runs
    python bench/bench_encoder.py --encoder x.pt --extra head.dropout=0.1 --tag do01  # a head/fine-tuning recipe

Frozen: ``encoder=<minimol | pretrained encoder.path=PATH> task.freeze_encoder=true
task.precompute_embeddings=true`` with the default head (MiniMol needs ``pip install --no-deps minimol==1.3.5``;
`make setup` does it). Scratch: the default molgnn-train model; ``--scratch-from`` reuses bench_decisions.py's
``<set>-distance-<seed>`` runs, which are exactly that model (``uncertainty=distance`` is the default and does
not change training). Fine-tuned (``--finetune``): ``encoder=pretrained encoder.path=PATH``, every other
setting the default's. Choose encoders on the validation columns; the test columns are reported once.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import DEV_SUITE, PEERS, dataset_overrides, judged_metric, markdown_table, mean_std, run_train

FROZEN = ["task.freeze_encoder=true", "task.precompute_embeddings=true"]


def encoder_overrides(encoder: str, finetune: bool) -> tuple[str, list[str]]:
    """--encoder value -> (column name, molgnn-train overrides)."""
    if encoder == "minimol":
        return "minimol", ["encoder=minimol", *([] if finetune else FROZEN)]
    path = Path(encoder).resolve()
    if finetune:
        return f"{path.stem}-finetuned", ["encoder=pretrained", f"encoder.path={path}"]
    return path.stem, ["encoder=pretrained", f"encoder.path={path}", *FROZEN]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="minimol", help="minimol, or a molgnn encoder file")
    parser.add_argument("--finetune", action="store_true", help="fine-tune the encoder (default: frozen)")
    parser.add_argument("--datasets", nargs="+", default=list(DEV_SUITE), choices=DEV_SUITE)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--scratch-from", default=None, help="folder of bench_decisions runs to reuse")
    parser.add_argument("--out", default=None)
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for the encoder's runs only")
    parser.add_argument("--tag", default="", help="suffix of the column and run names (a recipe's name)")
    args = parser.parse_args()
    name, frozen = encoder_overrides(args.encoder, args.finetune)
    name, frozen = name + (f"-{args.tag}" if args.tag else ""), [*frozen, *args.extra]
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_encoder_"))
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
        return job, run_train([*dataset_overrides(d), f"seed={s}", *frozen], out / f"{d}-{name}-{s}", threads)

    # scratch last: reused runs of a bench_decisions.py started earlier are then finished
    jobs = [(d, c, s) for c in ("frozen", "scratch") for d in args.datasets for s in args.seeds]
    with ThreadPoolExecutor(args.parallel) as pool:
        res = dict(pool.map(one, jobs))
    print(report(res, args.datasets, args.seeds, name))
    (out / f"{name}.md").write_text(report(res, args.datasets, args.seeds, name) + "\n")
    print(f"runs in {out}")


def report(res: dict, datasets: list[str], seeds: list[int], name: str) -> str:
    rows, wins = [], {"scratch": 0, "peer": 0, "within10": 0}
    for d in datasets:
        key = judged_metric(d)
        val = key.replace("test/", "val/")
        fr = [res[(d, "frozen", s)][key] for s in seeds]
        sc = [res[(d, "scratch", s)][key] for s in seeds]
        fr_mean, sc_mean, best = sum(fr) / len(fr), sum(sc) / len(sc), PEERS[d]["best"]
        wins["scratch"] += fr_mean < sc_mean
        wins["peer"] += fr_mean < best
        wins["within10"] += fr_mean <= 1.1 * sc_mean
        rows.append(
            [
                d,
                key.split("/")[1].upper(),
                mean_std([res[(d, "frozen", s)][val] for s in seeds]),
                mean_std([res[(d, "scratch", s)][val] for s in seeds]),
                mean_std(fr),
                mean_std(sc),
                f"{best:.3f}",
            ]
        )
    n = len(datasets)
    rows.append(
        [
            name,
            "",
            "",
            "",
            f"within 10% of scratch on {wins['within10']} of {n}; better on {wins['scratch']}",
            "",
            f"better than the best peer on {wins['peer']} of {n}",
        ]
    )
    header = ["set", "metric", f"val: {name}", "val: scratch", f"test: {name}"]
    return markdown_table([*header, "test: D-MPNN scratch", "best peer (test)"], rows)


if __name__ == "__main__":
    main()
