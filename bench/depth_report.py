"""Tables and the bar of the depth benchmark, from the committed ledger and the run folders
(`python bench/bench_depth.py --report-only`). Picks are made on mean validation RMSE over the bar's seeds and
only among cells that have every one of them; test RMSE is reported, never used to choose."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench_depth import BASE_MODES, DATASETS, DEPTHS, DIAG_KEYS, FAMILY_PLAIN, LEDGER, MODES
from common import markdown_table


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
    n_seeds = len(seeds or (0, 1, 2))
    complete = {k: v for k, v in found.items() if len(v) >= n_seeds}  # the only cells the picks choose from
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
            *_bar(complete, family, dataset),
            "",
        ]
    return "\n".join([*lines, *_across_families(complete), *_coverage(found, n_seeds)])


def _across_families(found) -> list[str]:
    """The bar once more per data set with every family in the running (shallow and deep chosen on validation)."""
    lines = ["## Across families", ""]
    for dataset in sorted({k[1] for k in found}):
        best_s = _best(found, None, dataset, lambda k: k[3] <= 4)
        best_d = _best(found, None, dataset, lambda k: k[3] == 12 and k[2] != "plain")
        if not best_s or not best_d:
            continue
        lines.append(f"- {dataset}: " + _versus(best_s, best_d, with_family=True))
        lines += [f"  {g}" for g in _goal(found, None, dataset, _mean(best_s[1], "test/rmse"))]
    return lines + [""]


def _coverage(found, n_seeds: int) -> list[str]:
    """How much of the issue's grid (both families x DATASETS x BASE_MODES x DEPTHS, every seed) is finished."""
    lines, done, total = ["## Grid coverage", ""], 0, 0
    for family in FAMILY_PLAIN:
        for dataset in DATASETS:
            cells = [(m, d) for m in BASE_MODES for d in sorted(DEPTHS)]
            missing = [f"{m} L{d}" for m, d in cells if len(found.get((family, dataset, m, d), [])) < n_seeds]
            done, total = done + len(cells) - len(missing), total + len(cells)
            if missing:
                lines.append(f"- {family} on {dataset}: missing {', '.join(missing)}")
    return [
        *lines,
        f"- {done} of {total} cells of {len(BASE_MODES)} switches x depths {sorted(DEPTHS)} "
        f"have all {n_seeds} seeds",
        "",
    ]


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
    (fam, _, mode, depth), runs = best
    rmse = _mean(runs, "test/rmse")
    mode = mode if family else f"{fam} {mode}"
    verdict = "beats" if rmse < shallow_rmse else "does not beat"
    return [
        f"Goal (chosen on validation): best deep = {mode} L{depth} test {rmse:.3f} (n={len(runs)}), "
        f"{100 * (rmse / shallow_rmse - 1):+.1f}% -> {verdict} the best shallow."
    ]
