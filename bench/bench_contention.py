"""`make demo` alone and beside a busy 2-thread job, in one run (issue #17: at most 3x its idle time).

    python bench/bench_contention.py            # alone, busy, alone, busy (medians per condition)
    python bench/bench_contention.py --repeats 1

The busy job is a separate Python process multiplying 1024x1024 matrices with torch on 2 threads (torch's own
OpenMP defaults, as a user's other job would run) for as long as the demo runs. Run it on an otherwise idle
machine (`uptime`); the figures go to stdout and, with --results, to a markdown file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = (
    "import torch\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\n"
    "while True:\n    a = torch.tanh(a @ a) \n"
)


def time_demo() -> float:
    """Wall seconds of `make demo` (setup included, as a user runs it); raises if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    start = time.perf_counter()
    proc = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.perf_counter() - start


def time_demo_beside_busy_job() -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    busy = subprocess.Popen([sys.executable, "-c", BUSY], env=env)
    try:
        time.sleep(3)  # the busy job is up and spinning before the demo starts
        return time_demo()
    finally:
        busy.kill()
        busy.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--results", type=Path, default=None)
    args = p.parse_args()
    alone, busy = [], []
    for _ in range(args.repeats):
        alone.append(time_demo())
        busy.append(time_demo_beside_busy_job())
        print(f"alone {alone[-1]:.1f} s, beside a busy 2-thread job {busy[-1]:.1f} s", flush=True)
    a, b = statistics.median(alone), statistics.median(busy)
    text = (
        f"# make demo under contention (bench/bench_contention.py, {args.repeats} alternating runs each)\n\n"
        f"| condition | wall s (median) | runs |\n|---|---|---|\n"
        f"| alone | {a:.1f} | {', '.join(f'{x:.1f}' for x in alone)} |\n"
        f"| beside a busy 2-thread job | {b:.1f} | {', '.join(f'{x:.1f}' for x in busy)} |\n\n"
        f"Ratio busy / alone: {b / a:.2f}x (bar: at most 3x).\n"
    )
    print(text)
    if args.results:
        args.results.write_text(text)


if __name__ == "__main__":
    main()
