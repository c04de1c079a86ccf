"""End-to-end molgnn-predict throughput and peak memory on a generated SMILES file, next to the model's pure
forward throughput on pre-featurized graphs (measured in the same run, so the ratio is fair).

    python bench/bench_predict.py --rows 100000 1000000 [--encoder dmpnn|gine] [--workers N]

The file cycles the SMILES of data/moleculenet/*.csv with one invalid SMILES every 1,000 rows, as .smi with
an id. The model has default-size weights, randomly initialised (speed does not depend on the values),
saved in the molgnn-train checkpoint format. Each prediction runs as a `molgnn-predict` subprocess; memory is
sampled every 0.2 s over the process and its featurization workers (psutil: peak RSS of the main process,
peak PSS summed over the tree, i.e. shared copy-on-write pages counted once). Reference: Chemprop v2.3.1
predict, 797 molecules/s end to end and 1.45 GiB peak on these 2-core machines (50k SMILES).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import molgnn.cli  # noqa: F401  (resolver)
from common import run_measured

from molgnn.checkpoint import head_header, make_header, save_atomic
from molgnn.data.scaler import TargetScaler
from molgnn.predict import featurize_job, iter_batches
from molgnn.predictor import load_predictor

ROOT = Path(__file__).resolve().parents[1]
INVALID = ("not_a_smiles", "C1CC", "c1ccccc1(", "[Xx]C")


def make_input(rows: int, path: Path) -> Path:
    pool = []
    for name in ("esol", "freesolv", "lipophilicity"):
        pool += pd.read_csv(ROOT / f"data/moleculenet/{name}.csv").smiles.tolist()
    with open(path, "w") as fh:
        for i in range(rows):
            s = INVALID[(i // 1000) % len(INVALID)] if i % 1000 == 999 else pool[i % len(pool)]
            fh.write(f"{s} mol{i}\n")
    return path


def make_checkpoint(encoder_name: str, path: Path) -> Path:
    """Default-size encoder + head, random weights, in the molgnn-train checkpoint layout."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"encoder={encoder_name}",
                "paths.output_dir=/tmp/unused",
                "paths.cache_dir=/tmp/unused",
            ],
        )
    torch.manual_seed(0)
    encoder = instantiate(cfg.encoder).eval()
    head = instantiate(cfg.head)(in_dim=encoder.out_dim, out_dim=1).eval()
    scaler = TargetScaler(torch.tensor([-3.0]), torch.tensor([2.0]))
    header = make_header("model", encoder, heads=[head_header("bench", head, ["y"], scaler, "random")])
    state = {
        **{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        **{f"head.{k}": v for k, v in head.state_dict().items()},
        **{f"scaler.{k}": v for k, v in scaler.state_dict().items()},
    }
    return save_atomic({"molgnn": header, "state_dict": state}, path)


def run_predict(ckpt: Path, src: Path, out: Path, extra: list[str]) -> dict:
    """One molgnn-predict subprocess; wall time, the engine's own summary, peak memory."""
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.predict",
        f"ckpt_path={ckpt}",
        f"input.path={src}",
        f"output_path={out}",
        "progress=false",
        f"hydra.run.dir={out.parent / 'hydra'}",
        *extra,
    ]
    run = run_measured(cmd)
    log = run["log"]
    if run["returncode"] != 0:
        raise RuntimeError(f"molgnn-predict failed ({run['returncode']}):\n{log[-3000:]}")
    m = re.search(
        r"predicted (\d+) rows \((\d+) valid, (\d+) invalid\) in ([\d.]+) s: (\d+) molecules/s", log
    )
    return {
        "wall": run["wall"],
        "rows": int(m[1]),
        "valid": int(m[2]),
        "invalid": int(m[3]),
        "engine_s": float(m[4]),
        "peak_rss": run["peak_rss"],
        "peak_pss": run["peak_pss"],
    }


def forward_throughput(ckpt: Path, src: Path, n: int, batch_size: int) -> tuple[float, float]:
    """(featurization mol/s in one process, forward mol/s on pre-featurized batches) on the first n rows."""
    model = load_predictor(ckpt)
    smiles = [line.split()[0] for line, _ in zip(open(src), range(n))]
    t0 = time.perf_counter()
    packed = [featurize_job(smiles[i : i + 1000], model.spec, []) for i in range(0, len(smiles), 1000)]
    t_feat = time.perf_counter() - t0
    batches = [b for p in packed for b in iter_batches(p, batch_size)]
    model.predict_batch(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        model.predict_batch(b)
    t_fwd = time.perf_counter() - t0
    graphs = sum(b.num_graphs for b in batches)
    return len(smiles) / t_feat, graphs / t_fwd


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100000, 1000000])
    parser.add_argument(
        "--encoder", default="dmpnn", help="conf/encoder group at its defaults (dmpnn | gine)"
    )
    parser.add_argument("--workers", type=int, default=None, help="num_workers (default: every core)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="batch_size (default: the engine's, 128 on CPU)"
    )
    parser.add_argument("--chunk-rows", type=int, default=10000)
    parser.add_argument(
        "--forward-rows", type=int, default=20000, help="rows for the pure forward measurement"
    )
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--extra", nargs="*", default=[], help="more molgnn-predict overrides")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        ckpt = make_checkpoint(args.encoder, tmp / "model.ckpt")
        extra = [f"chunk_rows={args.chunk_rows}", *args.extra]
        if args.workers is not None:
            extra.append(f"num_workers={args.workers}")
        if args.batch_size is not None:
            extra.append(f"batch_size={args.batch_size}")
        batch_size = args.batch_size or 128
        workers = os.cpu_count() if args.workers is None else args.workers
        threads = max(1, os.cpu_count() // 2) if workers > 0 else torch.get_num_threads()
        torch.set_num_threads(threads)  # the forward-only measurement uses the engine's thread count
        results = []
        for rows in args.rows:
            src = make_input(rows, tmp / f"in_{rows}.smi")
            out = tmp / f"out_{rows}" / f"preds.{args.format}"
            out.parent.mkdir()
            r = run_predict(ckpt, src, out, extra)
            assert r["rows"] == rows and r["invalid"] == rows // 1000, r
            feat, fwd = forward_throughput(ckpt, src, min(rows, args.forward_rows), batch_size)
            results.append((rows, r, feat, fwd))
            out.unlink()
            src.unlink()

    gib = 1024**3
    print(
        f"encoder {args.encoder} (defaults, random weights); {os.cpu_count()} cores; forward torch threads "
        f"{threads}; featurization workers {workers}; batch {batch_size}; chunk {args.chunk_rows}; "
        f"output {args.format}"
    )
    print(
        "| rows | invalid | end to end mol/s (wall, incl. start-up) | engine mol/s | peak RSS main | "
        "peak PSS main+workers | featurize 1 proc mol/s | forward only mol/s | engine / forward |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rows, r, feat, fwd in results:
        e2e = rows / r["wall"]
        print(
            f"| {rows:,} | {r['invalid']:,} | {e2e:,.0f} | {rows / r['engine_s']:,.0f} | "
            f"{r['peak_rss'] / gib:.2f} GiB | {r['peak_pss'] / gib:.2f} GiB | {feat:,.0f} | {fwd:,.0f} | "
            f"{rows / r['engine_s'] / fwd:.2f} |"
        )
    print(
        "Reference: Chemprop v2.3.1 predict 797 molecules/s end to end, 1.45 GiB peak (50k SMILES, 2 cores)."
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
