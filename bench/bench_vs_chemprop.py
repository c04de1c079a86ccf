"""molgnn-predict against Chemprop v2's `chemprop predict`, side by side in one run (issue #18's bar).

    python bench/bench_vs_chemprop.py --venv /tmp/cpvenv          # creates the venv if it does not exist
    python bench/bench_vs_chemprop.py --venv /tmp/cpvenv --smiles my.csv.gz --smiles-col SMILES --rows 50000

Chemprop lives in its own virtual environment (``--venv``; made with ``python -m venv`` and
``pip install torch==<this torch> chemprop==2.3.1`` when missing), so nothing is installed into molgnn's. Both
tools train their default model for 2 epochs on ESOL (the bundled file; Chemprop with 1 warm-up epoch, as
it refuses 2 warm-up epochs of 2), then predict the same SMILES file
(default: the bundled 50,000 MOSES molecules, data/pretrain/moses_50k.csv.gz), each as a subprocess measured
from start to exit (start-up included): molecules/s, and peak memory sampled every 0.2 s (PSS summed over the
process tree, RSS of the main process). Each tool predicts ``--repeats`` times, alternating; the table gives
medians. Nothing here is timed in a test; run it on an idle machine (``uptime``).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import run_measured

ROOT = Path(__file__).resolve().parents[1]
CHEMPROP = "2.3.1"


def ensure_venv(venv: Path) -> Path:
    """The venv's `chemprop` executable; the venv is created (CPU torch first) when missing."""
    exe = venv / "bin" / "chemprop"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
        subprocess.run([*pip, f"chemprop=={CHEMPROP}"], check=True)
    return exe


def measured(cmd: list[str]) -> dict:
    """Run ``cmd`` to completion (common.run_measured); a failure stops the benchmark with its output."""
    run = run_measured(cmd)
    if run["returncode"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({run['returncode']}):\n{run['log'][-3000:]}")
    return run


def write_input(src: Path, col: str, rows: int, out: Path) -> int:
    """The first ``rows`` SMILES of ``src`` as a one-column CSV ``smiles`` (both tools read it)."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fh:
        header = fh.readline().strip().split(",")
        k = [h.lower() for h in header].index(col.lower())
        smiles = [line.strip().split(",")[k] for _, line in zip(range(rows), fh)]
    out.write_text("smiles\n" + "\n".join(smiles) + "\n")
    return len(smiles)


def train_both(chemprop: Path, work: Path) -> tuple[Path, Path]:
    """Each tool's default model, 2 epochs on ESOL (reused when --work already holds them)."""
    esol = ROOT / "data" / "moleculenet" / "esol.csv"
    mg_model = work / "molgnn" / "checkpoints" / "best.ckpt"
    if mg_model.exists() and sorted((work / "chemprop").rglob("best*.pt")):
        return sorted((work / "chemprop").rglob("best*.pt"))[0], mg_model
    subprocess.run(
        [str(chemprop), "train", "-i", str(esol), "-s", "smiles", "--target-columns", "logS",
         "--epochs", "2", "--warmup-epochs", "1", "-o", str(work / "chemprop")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "molgnn.cli.train", "data=esol", "trainer.max_epochs=2", "logger=none",
         "~callbacks.rich_progress_bar", f"hydra.run.dir={work / 'molgnn'}"],
        check=True, capture_output=True,
    )  # fmt: skip
    cp_model = sorted((work / "chemprop").rglob("best*.pt"))[0]
    return cp_model, work / "molgnn" / "checkpoints" / "best.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--smiles", type=Path, default=ROOT / "data" / "pretrain" / "moses_50k.csv.gz")
    parser.add_argument("--smiles-col", default="SMILES")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_vs_chemprop_"))
    work.mkdir(parents=True, exist_ok=True)
    chemprop = ensure_venv(args.venv)
    n = write_input(args.smiles, args.smiles_col, args.rows, work / "input.csv")
    cp_model, mg_model = train_both(chemprop, work)
    cmds = {
        f"Chemprop {CHEMPROP} `chemprop predict`": [
            str(chemprop), "predict", "-i", str(work / "input.csv"), "-s", "smiles",
            "--model-paths", str(cp_model), "-o", str(work / "cp_preds.csv"),
        ],
        "molgnn `molgnn-predict`": [
            sys.executable, "-m", "molgnn.cli.predict", f"ckpt_path={mg_model}",
            f"input.path={work / 'input.csv'}", f"output_path={work / 'mg_preds.csv'}", "progress=false",
            f"hydra.run.dir={work / 'hydra'}",
        ],
    }  # fmt: skip
    # the default model is calibrated: it also writes spreads, intervals and applicability-domain columns
    # (Morgan similarity to the training set); predictions alone are what chemprop predict writes
    cmds["molgnn `molgnn-predict uncertainty_columns=false`"] = [
        *cmds["molgnn `molgnn-predict`"],
        "uncertainty_columns=false",
    ]
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    for _ in range(args.repeats):  # alternating, so drifting machine load hits both alike
        for name, cmd in cmds.items():
            runs[name].append(measured(cmd))
    print(report(runs, n, args))


def report(runs: dict[str, list[dict]], n: int, args) -> str:
    rates = {k: statistics.median(n / r["wall"] for r in v) for k, v in runs.items()}
    pss = {k: statistics.median(r["peak_pss"] for r in v) / 2**20 for k, v in runs.items()}
    cp = next(iter(runs))
    lines = [
        f"{n:,} SMILES ({args.smiles.name}), both models trained 2 epochs on ESOL, "
        f"median of {args.repeats} alternating runs, start-up included",
        "",
        "| tool | molecules/s | peak PSS (MiB) | runs (s) |",
        "|---|---|---|---|",
    ]
    for k in runs:
        walls = ", ".join(f"{r['wall']:.1f}" for r in runs[k])
        lines.append(f"| {k} | {rates[k]:,.0f} | {pss[k]:,.0f} | {walls} |")
    for k in list(runs)[1:]:
        lines.append(f"| ratio {k} / Chemprop | {rates[k] / rates[cp]:.2f}x | {pss[k] / pss[cp]:.2f}x | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
