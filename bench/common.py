"""Helpers shared by the benchmark scripts: run molgnn-train in a subprocess, collect metrics, format tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("esol", "freesolv", "lipophilicity")


def run_train(overrides: list[str], run_dir: Path, threads: int | None = None) -> dict:
    """One molgnn-train run (quiet) into ``run_dir``; returns its metrics.json (reused if the run exists)."""
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "molgnn.cli.train", f"hydra.run.dir={run_dir}", "~callbacks.rich_progress_bar",
           *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"run failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def scaffold_overrides(dataset: str) -> list[str]:
    """The bundled MoleculeNet set on its committed scaffold split file."""
    return [f"data={dataset}", "split=predefined",
            f"split.path={ROOT / 'data/moleculenet/splits' / f'{dataset}_scaffold.json'}"]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)
