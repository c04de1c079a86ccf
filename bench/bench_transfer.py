"""Transfer benchmarks: scaffold-split test RMSE (mean ± std over seeds) and frozen-head training time.

    python bench/bench_transfer.py [--datasets esol freesolv lipophilicity] [--seeds 0 1 2] [--epochs N]
                                   [--parallel 1] [--out DIR] [--extra key=value ...]

Tables printed (markdown):
1. Hu et al. 2020 GCN (context prediction, shipped in data/pretrained/hu2020/) fine-tuned vs the same
   architecture from scratch (encoder.path=null).
2. Scratch vs frozen pretrained vs fine-tuned pretrained, for molgnn's own pretrained encoder
   (conf/encoder/pretrained.yaml, against the default D-MPNN from scratch) and for the Hu GCN.
3. Frozen-encoder head training time: precomputed embeddings (task.precompute_embeddings=true) vs running the
   encoder every epoch. "fit" = train+val epochs (EpochTimer); "total" adds the one-off precompute pass.
   Only comparable with --parallel 1 on an idle machine.
`--encoders ours` or `--encoders hu` runs one group only.

Every run is molgnn-train on the committed scaffold split (split=predefined); runs already in --out are
reused, so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from common import DATASETS, ROOT, markdown_table, mean_std, run_train, scaffold_overrides

FROZEN = ["task.freeze_encoder=true"]
PRECOMPUTE = ["++task.precompute_embeddings=true"]
HU = ["encoder=hu2020_gcn"]


def pretrained_available() -> bool:
    """conf/encoder/pretrained.yaml exists and its default checkpoint is in the checkout."""
    conf = ROOT / "conf/encoder/pretrained.yaml"
    if not conf.is_file():
        return False
    path = str(yaml.safe_load(conf.read_text()).get("path", ""))
    return (ROOT / path.replace("${paths.root_dir}/", "")).is_file()


def configs(with_hu: bool, with_ours: bool) -> dict[str, list[str]]:
    """Run name -> molgnn-train overrides."""
    out = {}
    if with_hu:
        out.update(
            {
                "hu_finetuned": HU,
                "hu_scratch": [*HU, "encoder.path=null"],
                "hu_frozen": [*HU, *FROZEN, *PRECOMPUTE],
                "hu_frozen_graphs": [*HU, *FROZEN],
            }
        )
    if with_ours:
        out["scratch"] = []
        out.update(
            {
                "ours_finetuned": ["encoder=pretrained"],
                "ours_frozen": ["encoder=pretrained", *FROZEN, *PRECOMPUTE],
                "ours_frozen_graphs": ["encoder=pretrained", *FROZEN],
            }
        )
    return out


def rmse(results: dict, name: str, dataset: str, seeds: list[int]) -> str:
    return mean_std([results[(name, dataset, s)]["test/rmse"] for s in seeds])


def timing_row(results: dict, label: str, prefix: str, dataset: str, seeds: list[int]) -> list[str]:
    pre = [results[(f"{prefix}_frozen", dataset, s)] for s in seeds]
    graphs = [results[(f"{prefix}_frozen_graphs", dataset, s)] for s in seeds]
    med = lambda ms, key: statistics.median(m.get(key) or 0.0 for m in ms)  # noqa: E731
    total_pre = med(pre, "time/fit_s") + med(pre, "time/precompute_s")
    total_graphs = med(graphs, "time/fit_s")
    return [
        dataset,
        label,
        f"{med(graphs, 'time/epoch_median_s'):.3f}",
        f"{med(pre, 'time/epoch_median_s'):.4f}",
        f"{med(pre, 'time/precompute_s'):.2f}",
        f"{total_graphs:.1f}",
        f"{total_pre:.1f}",
        f"{total_graphs / total_pre:.1f}x" if total_pre else "n/a",
        f"{rmse(results, f'{prefix}_frozen_graphs', dataset, seeds)} / {rmse(results, f'{prefix}_frozen', dataset, seeds)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's)")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument(
        "--out", default=None, help="run outputs (default: a temp dir); finished runs are reused"
    )
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=["hu", "ours"],
        choices=["hu", "ours"],
        help="hu: Hu et al. GCN runs; ours: molgnn's pretrained encoder (+ scratch D-MPNN)",
    )
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="molgnn-transfer-"))
    hu = "hu" in args.encoders
    ours = "ours" in args.encoders and pretrained_available()
    runs = configs(hu, ours)
    common = [*args.extra, *([f"trainer.max_epochs={args.epochs}"] if args.epochs else [])]
    jobs = [(name, d, s) for d in args.datasets for s in args.seeds for name in runs]
    threads = 1 if args.parallel > 1 else None

    def one(job):
        name, d, s = job
        overrides = [*scaffold_overrides(d), f"seed={s}", *runs[name], *common]
        return job, run_train(overrides, out / f"{name}-{d}-{s}", threads)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = dict(pool.map(one, jobs))
    print_tables(results, args, hu, ours, out)


def print_tables(results: dict, args, hu: bool, ours: bool, out: Path) -> None:
    """The three markdown tables for the encoder groups that ran."""
    seeds, datasets = args.seeds, args.datasets
    print(f"seeds {seeds}; epochs {args.epochs or '(config)'}; extra {args.extra or '-'}; outputs in {out}")
    if hu:
        print(
            "\n### Hu et al. 2020 GCN (contextpred): fine-tuned vs same architecture from scratch (test RMSE)\n"
        )
        print(
            markdown_table(
                ["dataset (scaffold)", "pretrained, fine-tuned", "from scratch"],
                [
                    [d, rmse(results, "hu_finetuned", d, seeds), rmse(results, "hu_scratch", d, seeds)]
                    for d in datasets
                ],
            )
        )
    print("\n### Scratch vs frozen pretrained (head only) vs fine-tuned pretrained (test RMSE)\n")
    rows = []
    for d in datasets:
        if ours:
            rows.append(
                [
                    d,
                    "molgnn pretrained (conf/encoder/pretrained.yaml)",
                    rmse(results, "scratch", d, seeds),
                    rmse(results, "ours_frozen", d, seeds),
                    rmse(results, "ours_finetuned", d, seeds),
                ]
            )
        if hu:
            rows.append(
                [
                    d,
                    "Hu GCN contextpred",
                    rmse(results, "hu_scratch", d, seeds),
                    rmse(results, "hu_frozen", d, seeds),
                    rmse(results, "hu_finetuned", d, seeds),
                ]
            )
    print(
        markdown_table(
            [
                "dataset (scaffold)",
                "encoder",
                "scratch (same architecture)",
                "frozen pretrained",
                "fine-tuned pretrained",
            ],
            rows,
        )
    )
    print("\n### Frozen-encoder head training: every epoch through the encoder vs precomputed embeddings\n")
    rows = [timing_row(results, "Hu GCN", "hu", d, seeds) for d in datasets if hu]
    rows += [timing_row(results, "molgnn pretrained", "ours", d, seeds) for d in datasets if ours]
    print(
        markdown_table(
            [
                "dataset",
                "encoder",
                "s/epoch (graphs)",
                "s/epoch (precomputed)",
                "precompute s",
                "total s (graphs)",
                "total s (precomputed)",
                "speed-up",
                "test RMSE graphs / precomputed",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
