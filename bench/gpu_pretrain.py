"""Pretrain molgnn encoders on one GPU machine inside a fixed wall-clock budget (issue #15, "pretraining at
scale"): the prepared script for a lent GPU machine (one GPU, many CPU cores), also runnable on a CPU.

    python bench/gpu_pretrain.py --corpus moses_sample.csv.gz data/pretrain/moleculenet_smiles.csv.gz \
        --out runs/gpu_pretrain --minutes 9 --runs dmpnn1024x5 dmpnn300x3

Within ``--minutes`` of wall clock, counted from the start:
1. time molgnn's featurization engine (graphs + all RDKit 2D descriptors + canonical keys) on this machine's
   cores and take as many molecules of the first corpus file as fit ``--featurize-share`` of the budget (the
   other corpus files are taken whole), written as one mixed corpus file;
2. featurize it once (``UnlabeledDataModule.setup``: one cache file that every run below reads);
3. run ``molgnn-pretrain`` for every named encoder concurrently (the GPU has room; the CPU cores feed the
   data loaders), each with a ``TimeBudget`` deadline so that its cosine schedule ends fully annealed;
4. copy each run's ``encoder.pt``, ``pretrain_summary.json`` and loss curve (``metrics.csv``) into ``--out``.
The dev suite's test molecules are excluded by the corpus config (conf/data_pretrain/moses_sample.yaml).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> overrides of the encoder (everything else is the shared recipe below)
RUNS = {"dmpnn1024x5": ["encoder.hidden_dim=1024", "encoder.num_layers=5"], "dmpnn300x3": []}
RECIPE = [
    "pretrain=combined",
    "trainer.max_epochs=1000",  # the TimeBudget deadline decides the length
    "trainer.log_every_n_steps=50",
    "data.batch_size=256",
    "checkpoint_every_n_steps=100000",
    "logger=csv",
]


def read_rows(path: Path) -> list[str]:
    """SMILES of a one-column corpus file (header dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.strip().split(",")[0] for line in fh.read().splitlines()[1:] if line.strip()]


def molecules_per_second(smiles: list[str], workers: int) -> float:
    """Featurization rate of this machine (graphs + every RDKit descriptor + canonical SMILES)."""
    from rdkit.Chem import Descriptors

    from molgnn.data.engine import Products, featurize
    from molgnn.featurize.spec import default_spec

    names = tuple(n for n, _ in Descriptors._descList)
    products = Products(default_spec(), canonical=True, descriptors=names)
    t0 = time.time()
    featurize(smiles, products, workers)
    return len(smiles) / (time.time() - t0)


def write_corpus(paths: list[Path], n_first: int, out: Path, seed: int = 0) -> int:
    """A sample of ``n_first`` rows of the first file plus every row of the others -> out (csv.gz)."""
    first = read_rows(paths[0])
    rows = random.Random(seed).sample(first, min(n_first, len(first)))
    for extra in paths[1:]:
        rows += read_rows(extra)
    with gzip.open(out, "wt") as fh:
        fh.write("SMILES\n" + "\n".join(rows) + "\n")
    return len(rows)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import molgnn.cli  # noqa: F401  (registers the config resolvers)

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("pretrain", overrides=overrides)


def featurize_corpus(corpus: Path, workers: int) -> None:
    """Warm the one featurization cache every run reads (same file, spec and products)."""
    from hydra.utils import instantiate

    cfg = compose([f"data.path={corpus}", f"data.featurize_workers={workers}", *RECIPE])
    encoder = instantiate(cfg.encoder)
    datamodule = instantiate(cfg.data)(spec=encoder.spec)
    datamodule.setup("fit")
    print(
        f"corpus: {datamodule.num_molecules} molecules used, {datamodule.num_excluded} excluded", flush=True
    )


def launch(name: str, corpus: Path, run_dir: Path, deadline: float, loader_workers: int, gpu: bool):
    overrides = [
        *RECIPE,
        *RUNS[name],
        f"data.path={corpus}",
        f"data.num_workers={loader_workers}",
        f"hydra.run.dir={run_dir}",
        "+callbacks.time_budget._target_=molgnn.tasks.budget.TimeBudget",
        f"+callbacks.time_budget.deadline={deadline}",
        "+callbacks.time_budget.probe_steps=100",
        "trainer.enable_progress_bar=false",
    ]
    if gpu:
        overrides += ["trainer=gpu", "trainer.precision=32-true"]
    code = (
        "import sys, torch; torch.set_float32_matmul_precision('high'); "
        "from molgnn.cli.pretrain import main; sys.argv = ['molgnn-pretrain', *sys.argv[1:]]; main()"
    )
    log = open(run_dir.parent / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", code, *overrides], stdout=log, stderr=subprocess.STDOUT)


def collect(name: str, run_dir: Path, out: Path, details: Path) -> None:
    """encoder.pt -> out/<name>.pt; summary, loss curve and log -> details/ (one tarball: few files come back)."""
    if (run_dir / "encoder.pt").exists():
        shutil.copy(run_dir / "encoder.pt", out / f"{name}.pt")
    if (run_dir / "pretrain_summary.json").exists():
        shutil.copy(run_dir / "pretrain_summary.json", details / f"{name}_summary.json")
    curves = sorted(run_dir.rglob("metrics.csv"))
    if curves:
        shutil.copy(curves[-1], details / f"{name}_metrics.csv")
    shutil.copy(run_dir.parent / f"{name}.log", details / f"{name}.log")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_pretrain"))
    parser.add_argument("--minutes", type=float, default=9.0)
    parser.add_argument("--featurize-share", type=float, default=0.3)
    parser.add_argument("--export-seconds", type=float, default=45.0, help="kept after the deadline")
    parser.add_argument("--max-molecules", type=int, default=None)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    t0 = time.time()
    end = t0 + 60 * args.minutes
    import torch

    gpu = torch.cuda.is_available()
    workers = os.cpu_count() or 1
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    probe = read_rows(args.corpus[0])[: 500 * workers]  # long enough to amortize the pool's start
    rate = molecules_per_second(probe, workers)
    n_extra = sum(len(read_rows(p)) for p in args.corpus[1:])
    n_first = int(rate * (60 * args.minutes * args.featurize_share - (time.time() - t0))) - n_extra
    if args.max_molecules:
        n_first = min(n_first, args.max_molecules)
    corpus = args.work / "corpus.csv.gz"
    n_total = write_corpus(args.corpus, n_first, corpus)
    print(f"{rate:.0f} molecules/s on {workers} cores -> corpus of {n_total} rows", flush=True)
    featurize_corpus(corpus, workers)
    t_feat = time.time() - t0
    deadline = end - args.export_seconds
    loader_workers = max(1, (workers - len(args.runs)) // len(args.runs))
    procs = {
        name: launch(name, corpus, args.work / name, deadline, loader_workers, gpu) for name in args.runs
    }
    codes = {name: proc.wait() for name, proc in procs.items()}
    details = args.work / "details"
    details.mkdir(exist_ok=True)
    for name in args.runs:
        collect(name, args.work / name, args.out, details)
    report = {
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "cpu_cores": workers,
        "featurize_rate_per_s": round(rate, 1),
        "corpus_rows": n_total,
        "featurize_seconds": round(t_feat, 1),
        "total_seconds": round(time.time() - t0, 1),
        "exit_codes": codes,
    }
    (details / "gpu_pretrain.json").write_text(json.dumps(report, indent=2))
    shutil.make_archive(str(args.out / "details"), "gztar", details)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
