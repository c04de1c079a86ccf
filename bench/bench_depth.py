"""Depth benchmark (issue #19): test RMSE against encoder depth, plain vs each depth switch, with the
oversmoothing diagnostics of every run beside it.

    python bench/bench_depth.py                                   # the full grid (hours on 2 CPU cores)
    python bench/bench_depth.py --datasets esol adme_sol --seeds 0 --depths 2 4 12
    python bench/bench_depth.py --report-only                     # tables from the runs already finished
    python bench/bench_depth.py --report-only --seeds 0 1 2 3 4   # ... over more seeds (default: 0 1 2)

Runs are bit-reproducible only at the same thread count (float sums reduce in another order on more threads,
and on Biogen solubility one seed's test RMSE moved 0.05 from 1 to 2 threads): each ledger line records it.

Every run is a molgnn-train subprocess into <out>/<family>/<dataset>/<mode>_L<depth>_s<seed>/ and is
skipped when its metrics.json exists, so an interrupted benchmark resumes where it stopped. Each finished run
also appends its metrics to bench/results/depth_runs.jsonl (committed), which --report-only reads beside the
run folders: the tables survive losing the machine the runs were made on. The grid is
walked seed by seed, depth 2, 4, 12 before 8, 16, so a partial run answers the bar's question first.

Choice of the compared models is honest: "best shallow" is the (switch, depth <= 4) with the lowest mean
validation RMSE; "best mitigated at 12" is the non-plain switch with the lowest mean validation RMSE at
depth 12. Their test RMSEs are reported, never used for the choice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_grid_arguments, dataset_overrides, markdown_table, run_grid_and_report, run_train  # noqa: E402

MODES: dict[str, list[str]] = {
    "plain": [],
    "residual": ["encoder.residual=true"],
    "jk": ["encoder.jk=max"],
    "virtual_node": ["encoder.virtual_node=true"],
    "pair_norm": ["encoder.pair_norm=true"],
    "drop_edge": ["encoder.drop_edge=0.1"],
    "res+vn+jk": ["encoder.residual=true", "encoder.virtual_node=true", "encoder.jk=max"],
    "pn+de": ["encoder.pair_norm=true", "encoder.drop_edge=0.1"],
    "pn+de0.2": ["encoder.pair_norm=true", "encoder.drop_edge=0.2"],
    "attention": ["encoder.global_attention=4"],
    "noisy_nodes": ["task.noisy_nodes=0.1"],
    "pn+jk": ["encoder.pair_norm=true", "encoder.jk=max"],
    "pn+de+nn": ["encoder.pair_norm=true", "encoder.drop_edge=0.1", "task.noisy_nodes=0.1"],
    "res+vn": ["encoder.residual=true", "encoder.virtual_node=true"],
    "pn_last": ["encoder.pair_norm=last"],
    "pnl+de": ["encoder.pair_norm=last", "encoder.drop_edge=0.1"],
    "pn+jk+de": ["encoder.pair_norm=true", "encoder.jk=max", "encoder.drop_edge=0.1"],
    "gate": ["encoder.gate=true"],
    "gate+pn+de": ["encoder.gate=true", "encoder.pair_norm=true", "encoder.drop_edge=0.1"],
    "gate+vn": ["encoder.gate=true", "encoder.virtual_node=true"],
    "untied": ["encoder.shared_weights=false"],
    "untied+pn+de": ["encoder.shared_weights=false", "encoder.pair_norm=true", "encoder.drop_edge=0.1"],
}
ONE_FAMILY = {"untied": "dmpnn", "untied+pn+de": "dmpnn"}  # switches only one family has
FAMILY_PLAIN = {"dmpnn": ["encoder=dmpnn"], "gine": ["encoder=gine", "encoder.residual=false"]}
DEPTHS = (2, 4, 12, 8, 16)
DATASETS = ("esol", "lipophilicity", "adme_sol", "adme_hlm")
DIAG_KEYS = {
    "last_node_cosine": "atom cosine",
    "energy_ratio_last_to_first": "energy last/first",
    "last_node_effective_rank": "atom eff. rank",
}


def run_dir(out: Path, family: str, dataset: str, mode: str, depth: int, seed: int) -> Path:
    return out / family / dataset / f"{mode}_L{depth}_s{seed}"


def overrides(family: str, dataset: str, mode: str, depth: int, seed: int, epochs: int) -> list[str]:
    return [
        *dataset_overrides(dataset),
        *FAMILY_PLAIN[family],
        *MODES[mode],
        f"encoder.num_layers={depth}",
        f"seed={seed}",
        f"trainer.max_epochs={epochs}",
        "uncertainty=none",
        "logger=none",
    ]


def run_grid(args) -> None:
    """Train every (seed, family, dataset, depth, mode) asked for; a run the ledger already holds is not re-run
    (its folder may be gone with an earlier machine), so a grid can be re-issued to fill its gaps."""
    done = {json.loads(line)["run"] for line in LEDGER.read_text().splitlines()} if LEDGER.exists() else set()
    for seed in args.seeds:
        for family in args.families:
            for dataset in args.datasets:
                for depth in args.depths:
                    for mode in args.modes:
                        if ONE_FAMILY.get(mode, family) != family:
                            continue  # e.g. GINE has one weight matrix per layer already
                        d = run_dir(args.out, family, dataset, mode, depth, seed)
                        if "/".join(d.parts[-3:]) in done and not (d / "metrics.json").exists():
                            continue
                        fresh = not (d / "metrics.json").exists()
                        m = run_train(
                            overrides(family, dataset, mode, depth, seed, args.epochs), d, args.threads
                        )
                        if fresh:
                            record(d, m, args.threads)
                        print(
                            f"{family} {dataset} {mode} L{depth} s{seed}: test rmse {m['test/rmse']:.4f} "
                            f"val {m['val/rmse']:.4f} node_cos {m.get('diagnostics/last_node_cosine', 0):.3f}",
                            flush=True,
                        )


LEDGER = Path(__file__).resolve().parent / "results" / "depth_runs.jsonl"
KEPT = ("test/rmse", "val/rmse", *(f"diagnostics/{k}" for k in DIAG_KEYS))


def record(run: Path, metrics: dict, threads: int | None, ledger: Path = LEDGER) -> None:
    """Append one finished run's metrics (and its torch thread count; null = torch's default) to the committed
    ledger, so the tables survive losing the run folders."""
    family, dataset, name = run.parts[-3:]
    line = {"run": f"{family}/{dataset}/{name}", **{k: metrics.get(k) for k in KEPT}, "threads": threads}
    with ledger.open("a") as f:
        f.write(json.dumps(line) + "\n")


def collect(out: Path, seeds: list[int] | None = None, ledger: Path = LEDGER) -> dict:
    """{(family, dataset, mode, depth): [metrics dicts of the finished seeds]}: the ledger's runs, then the
    run folders under ``out`` (a folder replaces the ledger's line of the same run); only ``seeds`` when given,
    so extra seeds run to study one cell do not change the cells (and picks) the bar is read from."""
    runs: dict[str, dict] = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            entry = json.loads(line)
            runs[entry["run"]] = entry
    for path in sorted(out.glob("*/*/*_L*_s*/metrics.json")):
        runs["/".join(path.parts[-4:-1])] = json.loads(path.read_text())
    found: dict = {}
    for key in sorted(runs):
        family, dataset, name = key.split("/")
        mode, rest = name.rsplit("_L", 1)
        if seeds is not None and int(rest.split("_s")[1]) not in seeds:
            continue
        found.setdefault((family, dataset, mode, int(rest.split("_s")[0])), []).append(runs[key])
    return found


def _mean(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.mean(vals) if vals else None


def _cell(runs: list[dict]) -> str:
    rmse = [r["test/rmse"] for r in runs]
    sd = f" ± {statistics.stdev(rmse):.3f}" if len(rmse) > 1 else ""
    cos = _mean(runs, "diagnostics/last_node_cosine")
    return (
        f"{statistics.mean(rmse):.3f}{sd} (n={len(rmse)}; cos {cos:.2f})"
        if cos is not None
        else f"{statistics.mean(rmse):.3f}{sd} (n={len(rmse)})"
    )


def report(out: Path, seeds: list[int] | None = None) -> str:
    found = collect(out, seeds)
    lines = [
        "# Depth benchmark (bench/bench_depth.py)",
        "",
        "Cells: mean test RMSE ± sd over seeds (n seeds; cos = mean pairwise cosine of the atoms within a "
        "molecule at the last layer, validation molecules). Modes: see MODES in bench/bench_depth.py.",
        "",
    ]
    for family, dataset in sorted({(k[0], k[1]) for k in found}):
        depths = sorted({k[3] for k in found if k[:2] == (family, dataset)})
        modes = [m for m in MODES if any(k[:3] == (family, dataset, m) for k in found)]
        rows = [
            [
                mode,
                *[
                    _cell(found[(family, dataset, mode, d)]) if (family, dataset, mode, d) in found else ""
                    for d in depths
                ],
            ]
            for mode in modes
        ]
        lines += [
            f"## {family} on {dataset}",
            "",
            markdown_table(["mode", *[f"depth {d}" for d in depths]], rows),
            "",
            *_collapse(found, family, dataset, depths),
            *_bar(found, family, dataset),
            "",
        ]
    return "\n".join([*lines, *_across_families(found)])


def _across_families(found) -> list[str]:
    """The bar once more per data set with every family in the running (shallow and deep chosen on validation)."""
    lines = ["## Across families", ""]
    for dataset in sorted({k[1] for k in found}):
        best_s = _best(found, None, dataset, lambda k: k[3] <= 4)
        best_d = _best(found, None, dataset, lambda k: k[3] == 12 and k[2] != "plain")
        if not best_s or not best_d:
            continue
        lines.append(f"- {dataset}: " + _versus(best_s, best_d, with_family=True))
    return lines + [""]


def _versus(best_s, best_d, with_family: bool = False) -> str:
    """'best shallow = ... ; best mitigated at 12 = ..., gap ... -> within / NOT within 2%'."""
    s_rmse, d_rmse = _mean(best_s[1], "test/rmse"), _mean(best_d[1], "test/rmse")
    gap = d_rmse / s_rmse - 1
    fam_s, fam_d = (f"{best_s[0][0]} ", f"{best_d[0][0]} ") if with_family else ("", "")
    return (
        f"best shallow = {fam_s}{best_s[0][2]} L{best_s[0][3]} test {s_rmse:.3f} (n={len(best_s[1])}); "
        f"best mitigated at 12 = {fam_d}{best_d[0][2]} test {d_rmse:.3f} (n={len(best_d[1])}), "
        f"gap {100 * gap:+.1f}% -> {'within' if gap <= 0.02 else 'NOT within'} 2%"
    )


def _collapse(found, family, dataset, depths) -> list[str]:
    """The plain encoder's diagnostics against depth (does it collapse?)."""
    cells = []
    for d in depths:
        runs = found.get((family, dataset, "plain", d))
        if runs:
            vals = [_mean(runs, f"diagnostics/{k}") for k in DIAG_KEYS]
            cells.append(
                f"L{d}: "
                + ", ".join(f"{DIAG_KEYS[k]} {v:.3g}" for k, v in zip(DIAG_KEYS, vals) if v is not None)
            )
    return ["Plain encoder diagnostics by depth: " + "; ".join(cells), ""] if cells else []


def _best(found, family, dataset, keep):
    """The (key, runs) of (family, dataset) with the lowest mean validation RMSE among keys where keep(key);
    family None: any family."""
    cands = [(k, v) for k, v in found.items() if k[1] == dataset and family in (None, k[0]) and keep(k)]
    return min(cands, key=lambda kv: _mean(kv[1], "val/rmse")) if cands else None


def _bar(found, family, dataset) -> list[str]:
    """Best shallow (depth <= 4, any mode) vs best mitigated and plain at depth 12; chosen on validation."""
    best_s = _best(found, family, dataset, lambda k: k[3] <= 4)
    best_d = _best(found, family, dataset, lambda k: k[3] == 12 and k[2] != "plain")
    plain = found.get((family, dataset, "plain", 12))
    if not best_s or not best_d:
        return ["Bar: not enough finished runs yet (needs depth <= 4 and mitigated depth 12)."]
    s_rmse = _mean(best_s[1], "test/rmse")
    text = "Bar (chosen on validation): " + _versus(best_s, best_d)
    if plain:
        text += f"; plain at 12: test {_mean(plain, 'test/rmse'):.3f}, gap {100 * (_mean(plain, 'test/rmse') / s_rmse - 1):+.1f}%"
    return [text + ".", *_goal(found, family, dataset, s_rmse)]


def _goal(found, family, dataset, shallow_rmse: float) -> list[str]:
    """The goal beyond the bar: the deep model (depth >= 8, any mode) validation picks, against the best shallow."""
    best = _best(found, family, dataset, lambda k: k[3] >= 8)
    if not best:
        return []
    (_, _, mode, depth), runs = best
    rmse = _mean(runs, "test/rmse")
    verdict = "beats" if rmse < shallow_rmse else "does not beat"
    return [
        f"Goal (chosen on validation): best deep = {mode} L{depth} test {rmse:.3f} (n={len(runs)}), "
        f"{100 * (rmse / shallow_rmse - 1):+.1f}% -> {verdict} the best shallow."
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--families", nargs="+", default=["dmpnn", "gine"], choices=list(FAMILY_PLAIN))
    p.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    add_grid_arguments(p, "depth")
    args = p.parse_args()  # the report reads the seeds asked for (default 0 1 2, the bar's)
    run_grid_and_report(args, run_grid, lambda out: report(out, args.seeds))


if __name__ == "__main__":
    main()
