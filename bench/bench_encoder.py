"""Any encoder on the 9-set dev suite, frozen (a head on its embeddings) or fine-tuned, against molgnn's
D-MPNN from scratch and the best peer (RMSE for MoleculeNet, MAE for Biogen ADME; validation and test side by
side; 3 seeds).

    python bench/bench_encoder.py --encoder minimol --parallel 2                 # frozen MiniMol fingerprints
    python bench/bench_encoder.py --encoder models/pretrained/dmpnn_gpu1024.pt   # a molgnn encoder file, frozen
    python bench/bench_encoder.py --encoder models/pretrained/x.pt --finetune    # ... fine-tuned
    python bench/bench_encoder.py --scratch-from /path/to/bench_decisions_runs   # reuse default-model runs
    python bench/bench_encoder.py --encoder x.pt --extra head.dropout=0.1 --tag do01  # a head/fine-tuning recipe
    python bench/bench_encoder.py --encoder x.pt --scratch-summary bench/results/scratch_default.json  # no scratch runs
    python bench/bench_encoder.py --encoder minimol --finetune --init-from 'R/{set}-minimol-fh-{seed}/checkpoints/best.ckpt'
        # LP-FT: fine-tune from the frozen-head runs R of `--tag fh --extra experiment=frozen_head`

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
    parser.add_argument(
        "--scratch-summary",
        default=None,
        help="JSON of scratch val/test mean and sd per set (no scratch runs)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for the encoder's runs only")
    parser.add_argument("--tag", default="", help="suffix of the column and run names (a recipe's name)")
    parser.add_argument(
        "--init-from",
        default=None,
        help="LP-FT: start each run from this model file, {set} and {seed} filled in (a frozen-head bench's "
        "runs, e.g. 'RUNS/{set}-minimol-fh-{seed}/checkpoints/best.ckpt'; molgnn-train init_from=)",
    )
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
        init = [f"++init_from={args.init_from.format(set=d, seed=s)}"] if args.init_from else []
        runs = [*dataset_overrides(d), f"seed={s}", *frozen, *init]
        return job, run_train(runs, out / f"{d}-{name}-{s}", threads)

    # scratch last: reused runs of a bench_decisions.py started earlier are then finished
    columns = ("frozen",) if args.scratch_summary else ("frozen", "scratch")
    jobs = [(d, c, s) for c in columns for d in args.datasets for s in args.seeds]
    with ThreadPoolExecutor(args.parallel) as pool:
        res = dict(pool.map(one, jobs))
    if args.scratch_summary:
        summary = json.loads(Path(args.scratch_summary).read_text())
        scratch_cols = {d: _summary_columns(summary[d]) for d in args.datasets}
    else:
        scratch_cols = {d: _run_columns(res, d, args.seeds) for d in args.datasets}
    text = report(res, args.datasets, args.seeds, name, scratch_cols)
    print(text)
    (out / f"{name}.md").write_text(text + "\n")
    print(f"runs in {out}")


def _run_columns(res: dict, d: str, seeds: list[int]) -> tuple[str, str, float]:
    """Scratch runs of set d -> (val 'mean ± sd', test 'mean ± sd', test mean)."""
    key = judged_metric(d)
    test = [res[(d, "scratch", s)][key] for s in seeds]
    val = [res[(d, "scratch", s)][key.replace("test/", "val/")] for s in seeds]
    return mean_std(val), mean_std(test), sum(test) / len(test)


def _summary_columns(entry: dict) -> tuple[str, str, float]:
    """{"val": [mean, sd], "test": [mean, sd]} -> the same triple as _run_columns."""
    (vm, vs), (tm, ts) = entry["val"], entry["test"]
    return f"{vm:.3f} ± {vs:.3f}", f"{tm:.3f} ± {ts:.3f}", tm


def report(res: dict, datasets: list[str], seeds: list[int], name: str, scratch_cols: dict) -> str:
    """Frozen/fine-tuned runs + scratch columns per set (see _run_columns) -> markdown table."""
    rows, wins = [], {"scratch": 0, "peer": 0, "within10": 0}
    for d in datasets:
        key = judged_metric(d)
        val = key.replace("test/", "val/")
        fr = [res[(d, "frozen", s)][key] for s in seeds]
        sc_val, sc_test, sc_mean = scratch_cols[d]
        fr_mean, best = sum(fr) / len(fr), PEERS[d]["best"]
        wins["scratch"] += fr_mean < sc_mean
        wins["peer"] += fr_mean < best
        wins["within10"] += fr_mean <= 1.1 * sc_mean
        rows.append(
            [
                d,
                key.split("/")[1].upper(),
                mean_std([res[(d, "frozen", s)][val] for s in seeds]),
                sc_val,
                mean_std(fr),
                sc_test,
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
