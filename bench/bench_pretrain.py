"""Does pretraining help? Fine-tune the pretrained encoder vs train from scratch (same hyperparameters) on the
scaffold splits, plus a linear probe (frozen embeddings + ridge vs Morgan fingerprint + ridge) on ESOL.

    python bench/bench_pretrain.py                                   # 3 sets x 3 seeds x 3 columns (long)
    python bench/bench_pretrain.py --datasets esol --seeds 0 --epochs 5      # quick check
    python bench/bench_pretrain.py --encoder outputs/pretrain/.../encoder.pt --no-descriptors
    python bench/bench_pretrain.py --extra trainer.max_epochs=100            # any Hydra overrides for every run
    python bench/bench_pretrain.py --encoder x.pt --probe-only --readout sum+mean   # the ESOL probe alone

Columns: scratch (default encoder, random init), pretrained (encoder=pretrained encoder.path=...),
scratch + RDKit 2D descriptors concatenated before the head (data.descriptors=true), and the pretrained
encoder with the same descriptors. Runs go through
molgnn-train subprocesses (bench/common.py); finished runs in --out are reused.
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import DATASETS, ROOT, markdown_table, mean_std, run_train, scaffold_overrides

PEERS = {"esol": ("0.823", "0.760"), "freesolv": ("2.46", "2.20"), "lipophilicity": ("0.718", "0.727")}
DEFAULT_ENCODER = ROOT / "models" / "pretrained" / "dmpnn_all200k.pt"


def columns(encoder: Path, descriptors: bool) -> dict[str, list[str]]:
    cols = {"scratch": [], "pretrained": ["encoder=pretrained", f"encoder.path={encoder}"]}
    if descriptors:
        cols["scratch + RDKit 2D"] = ["++data.descriptors=true"]
        cols["pretrained + RDKit 2D"] = [*cols["pretrained"], "++data.descriptors=true"]
    return cols


def finetune_table(args, out: Path) -> tuple[str, dict]:
    cols = columns(Path(args.encoder).resolve(), not args.no_descriptors)
    epochs = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
    by_size = sorted(
        args.datasets, key=lambda d: -(ROOT / "data" / "moleculenet" / f"{d}.csv").stat().st_size
    )
    jobs = [
        (d, c, s) for d in by_size for c in cols for s in args.seeds
    ]  # longest runs first: better packing

    def one(job):
        d, c, s = job
        overrides = [*scaffold_overrides(d), f"seed={s}", *cols[c], *epochs, *args.extra]
        name = f"{d}-{c.replace(' ', '').replace('+', '_')}-{s}"
        return job, run_train(overrides, out / name, 1 if args.parallel > 1 else None)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = dict(pool.map(one, jobs))
    rows = [
        [
            d,
            *(mean_std([results[(d, c, s)]["test/rmse"] for s in args.seeds]) for c in cols),
            *PEERS.get(d, ("", "")),
        ]
        for d in args.datasets
    ]
    table = markdown_table(
        ["dataset (scaffold)", *(f"{c} RMSE" for c in cols), "Chemprop v2", "RF RDKit2D+Morgan"], rows
    )
    return table, results


def paired_table(results: dict, datasets: list[str], seeds: list[int]) -> str:
    """Each pretrained column against its scratch column, seed by seed (same seed = same split and head init)."""
    from scipy.stats import ttest_rel

    rows = []
    for d in datasets:
        for scratch, pre in (("scratch", "pretrained"), ("scratch + RDKit 2D", "pretrained + RDKit 2D")):
            if (d, pre, seeds[0]) not in results:
                continue
            a = [results[(d, scratch, s)]["test/rmse"] for s in seeds]
            b = [results[(d, pre, s)]["test/rmse"] for s in seeds]
            p = f"{ttest_rel(b, a).pvalue:.3f}" if len(seeds) > 2 else "-"
            rows.append(
                [
                    d,
                    pre,
                    f"{np.mean(b) - np.mean(a):+.3f}",
                    f"{sum(y < x for x, y in zip(a, b))} of {len(seeds)}",
                    p,
                ]
            )
    return markdown_table(
        [
            "dataset",
            "column",
            "mean test RMSE, pretrained - scratch",
            "seeds where pretrained is better",
            "paired t-test p",
        ],
        rows,
    )


def linear_probe(encoder_path: Path, dataset: str = "esol", readout: str | None = None) -> str:
    """Validation and test RMSE of RidgeCV on frozen pretrained / random-init embeddings, Morgan bits and RDKit
    descriptors. ``readout``: pool the atoms of both encoders another way (``encoder.readout``, e.g. sum+mean)."""
    import json

    import pandas as pd
    import torch
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from torch_geometric.data import Batch

    from molgnn.checkpoint import build_encoder, load_encoder, with_readout
    from molgnn.data.graphs import featurize_smiles
    from molgnn.featurize.descriptors import DescriptorScaler, compute_descriptors
    from molgnn.weights import read_weights

    frame = pd.read_csv(ROOT / "data" / "moleculenet" / f"{dataset}.csv")
    split = json.loads((ROOT / "data" / "moleculenet" / "splits" / f"{dataset}_scaffold.json").read_text())
    smiles, y = frame.iloc[:, 0].tolist(), frame.iloc[:, 1].to_numpy(float)
    train, test = split["train"] + split["valid"], split["test"]

    def embed(encoder) -> np.ndarray:
        feats = featurize_smiles(smiles, encoder.spec, 0)
        assert not feats.failures, feats.failures
        encoder.eval()
        with torch.no_grad():
            parts = [
                encoder.embed(
                    Batch.from_data_list(
                        [
                            feats.graphs.get(int(feats.graph_index[i]))
                            for i in range(k, min(k + 256, len(smiles)))
                        ]
                    )
                )
                for k in range(0, len(smiles), 256)
            ]
        return torch.cat(parts).numpy()

    def rmse(x: np.ndarray, fit_rows: list[int], score_rows: list[int]) -> float:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
        model.fit(x[fit_rows], y[fit_rows])
        return float(np.sqrt(np.mean((model.predict(x[score_rows]) - y[score_rows]) ** 2)))

    def ridge(x: np.ndarray) -> list[str]:
        """[validation RMSE (fit on train), test RMSE (fit on train + validation)]"""
        return [f"{rmse(x, split['train'], split['valid']):.3f}", f"{rmse(x, train, test):.3f}"]

    torch.manual_seed(0)
    header = read_weights(encoder_path).molgnn_header()
    random_init = build_encoder(header if readout is None else with_readout(header, readout, encoder_path))
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    morgan = np.array([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles], dtype=float)
    raw = compute_descriptors(smiles, num_workers=0)
    desc = DescriptorScaler.fit(raw[train], [str(i) for i in range(raw.shape[1])]).transform(raw)
    rows = [
        [f"{encoder_path.stem} (frozen)", *ridge(embed(load_encoder(encoder_path, readout=readout)))],
        ["same encoder, random init (frozen)", *ridge(embed(random_init))],
        ["Morgan r=2, 2048 bits", *ridge(morgan)],
        ["RDKit 2D descriptors", *ridge(desc)],
    ]
    header = [f"linear probe, {dataset} scaffold: features + RidgeCV", "val RMSE", "test RMSE"]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's)")
    parser.add_argument("--encoder", default=str(DEFAULT_ENCODER), help="pretrained encoder.pt to fine-tune")
    parser.add_argument("--no-descriptors", action="store_true", help="skip the scratch + RDKit 2D column")
    parser.add_argument("--no-probe", action="store_true", help="skip the ESOL linear probe")
    parser.add_argument("--probe-only", action="store_true", help="only the ESOL linear probe")
    parser.add_argument("--readout", default=None, help="the probe's atom pooling (encoder.readout)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (one thread each when > 1)")
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument(
        "--out", default=None, help="run directory (default: a temp dir); finished runs are reused"
    )
    args = parser.parse_args()
    if args.probe_only:
        print(linear_probe(Path(args.encoder), readout=args.readout))
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="molgnn-pretrain-bench-"))
    print(
        f"encoder: {args.encoder}; seeds {args.seeds}; epochs {args.epochs or '(config)'}; "
        f"extra {args.extra or '(none)'}; outputs in {out}\n"
    )
    table, results = finetune_table(args, out)
    print(table)
    print()
    print(paired_table(results, args.datasets, args.seeds))
    if not args.no_probe:
        print()
        print(linear_probe(Path(args.encoder), readout=args.readout))


if __name__ == "__main__":
    main()
