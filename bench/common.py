"""Helpers shared by the benchmark scripts: run molgnn-train in a subprocess, collect metrics, format tables."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("esol", "freesolv", "lipophilicity")
ADME_DATASETS = ("adme_hlm", "adme_rlm", "adme_mdr1_er", "adme_sol", "adme_hppb", "adme_rppb")
# The 9-set dev suite: MoleculeNet on its committed scaffold splits + Biogen ADME (Fang et al. 2023) on the
# authors' splits (data/adme_fang2023/README.md).
DEV_SUITE = DATASETS + ADME_DATASETS

# The test metric each set is judged by (what the peers tables in README.md / data/adme_fang2023 report).
METRIC = {**{d: "rmse" for d in DATASETS}, **{d: "mae" for d in ADME_DATASETS}}

# Peers' test figures in METRIC units (lower is better); rf = random forest on RDKit 2D + Morgan counts.
# MoleculeNet: README.md benchmark tables (scaffold split files); ADME: data/adme_fang2023/README.md (single
# run, seed 0, the authors' split files).
PEERS: dict[str, dict[str, float]] = {
    "esol": {"chemprop": 0.823, "rf": 0.760, "best": 0.760},
    "freesolv": {"chemprop": 2.46, "rf": 2.20, "best": 2.198},
    "lipophilicity": {"chemprop": 0.718, "rf": 0.727, "best": 0.718},
    "adme_hlm": {"chemprop": 0.362, "rf": 0.381, "best": 0.362},
    "adme_rlm": {"chemprop": 0.407, "rf": 0.456, "best": 0.407},
    "adme_mdr1_er": {"chemprop": 0.337, "rf": 0.379, "best": 0.337},
    "adme_sol": {"chemprop": 0.405, "rf": 0.426, "best": 0.405},
    "adme_hppb": {"chemprop": 0.359, "rf": 0.381, "best": 0.359},
    "adme_rppb": {"chemprop": 0.448, "rf": 0.409, "best": 0.409},
}


def run_train(overrides: list[str], run_dir: Path, threads: int | None = None) -> dict:
    """One molgnn-train run (quiet) into ``run_dir``; returns its metrics.json (reused if the run exists)."""
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    if run_dir.exists():  # an interrupted run: its checkpoints and cross-evaluations must not be reused
        shutil.rmtree(run_dir)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        f"hydra.run.dir={run_dir}",
        "~callbacks.rich_progress_bar",
        *overrides,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"run failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def scaffold_overrides(dataset: str) -> list[str]:
    """The bundled MoleculeNet set on its committed scaffold split file."""
    return [
        f"data={dataset}",
        "split=predefined",
        f"split.path={ROOT / 'data/moleculenet/splits' / f'{dataset}_scaffold.json'}",
    ]


def dataset_overrides(name: str) -> list[str]:
    """molgnn-train overrides for any DEV_SUITE set: MoleculeNet on its committed scaffold split file; an
    ADME endpoint on the authors' split (its data option selects split=<name> itself)."""
    if name in DATASETS:
        return scaffold_overrides(name)
    if name in ADME_DATASETS:
        return [f"data={name}"]
    raise ValueError(f"unknown dev-suite set {name!r}; one of {', '.join(DEV_SUITE)}")


def judged_metric(name: str) -> str:
    """The metrics.json key a DEV_SUITE set is judged by, e.g. 'test/rmse' or 'test/mae'."""
    return f"test/{METRIC[name]}"


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def add_grid_arguments(p, out_name: str) -> None:
    """The arguments every resumable grid benchmark shares (threads, run folder, results file, report-only)."""
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None)
    p.add_argument("--out", type=Path, default=ROOT / "bench_runs" / out_name)
    p.add_argument("--results", type=Path, default=None, help="also write the report here (markdown)")
    p.add_argument("--report-only", action="store_true")


def run_grid_and_report(args, run_grid, report) -> None:
    """Run the missing cells (unless --report-only), print the report, and write it to --results."""
    if not args.report_only:
        run_grid(args)
    text = report(args.out)
    print(text)
    if args.results:
        args.results.write_text(text + "\n")


def tree_memory(proc) -> tuple[int, int]:
    """(RSS of the psutil process ``proc``, PSS summed over it and its children) in bytes."""
    rss, pss = 0, 0
    try:
        rss = proc.memory_info().rss
        for p in [proc, *proc.children(recursive=True)]:
            try:
                info = p.memory_full_info()
                pss += getattr(info, "pss", info.rss)
            except Exception:  # a worker that just exited
                pass
    except Exception:
        pass
    return rss, pss


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd`` to completion, sampling memory every 0.2 s: wall seconds (start-up included), peak RSS of
    the main process, peak PSS of its process tree (shared pages counted once), its output and exit status."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(ps)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    log = proc.stdout.read()
    return {
        "wall": wall,
        "peak_rss": peak_rss,
        "peak_pss": peak_pss,
        "log": log,
        "returncode": proc.returncode,
    }
