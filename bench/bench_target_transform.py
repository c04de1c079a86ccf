"""Targets in raw units (issue #15): does ``data.target_transform=auto`` on raw ADME values recover the model
trained on the published log10 values?

    python bench/bench_target_transform.py --parallel 1 --seeds 0          # 6 endpoints x 3 models, seed 0
    python bench/bench_target_transform.py --datasets adme_rppb --seeds 0 --epochs 2     # smoke run
    python bench/bench_target_transform.py --report-only --results bench/results/target_transform.md

Each Biogen ADME endpoint (conf/data/adme_*.yaml; ``target`` holds log10 values) is turned back into raw
units, 10**target, in a CSV under <out>/data/ with the same rows in the same order, so the endpoint's split
file (conf/split/adme_*) still applies. Per endpoint and seed, three molgnn-train runs of the default model
(``uncertainty=none``, no diagnostics: the model and its training are the defaults, only the reports after
training are skipped): ``log`` = the stored log10 values; ``raw none`` = the raw CSV untransformed;
``raw auto`` = the raw CSV with ``data.target_transform=auto``. Every model is scored in log10 units: MAE of
log10(prediction) against the stored log10 value, on the validation split (the best checkpoint through
molgnn.predict) and on the test split (the run's test_predictions.csv). A raw-unit prediction <= the
smallest raw training value is clipped to that value before the log (the count is reported).

Runs go into <out>/<dataset>/<model>_s<seed>/ and are skipped when finished (scores.json), so an interrupted
benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ADME_DATASETS,
    ROOT,
    add_grid_arguments,
    markdown_table,
    run_grid_and_report,
    run_train,
)

sys.path.insert(0, str(ROOT))  # molgnn from this checkout when it is not installed

# smallest endpoint first: an interrupted benchmark leaves the most endpoints complete
ORDER = ("adme_rppb", "adme_hppb", "adme_sol", "adme_mdr1_er", "adme_rlm", "adme_hlm")
MODELS = {"log": [], "raw_none": ["data.target_transform=none"], "raw_auto": ["data.target_transform=auto"]}
LABELS = {"log": "log10 values", "raw_none": "raw, none", "raw_auto": "raw, auto"}
BAR = 0.05  # raw auto within 5% of the log-value model (test MAE in log units)


def endpoint(dataset: str) -> tuple[Path, Path]:
    """(stored log10 CSV, split JSON) of an ADME endpoint, read from its conf/data and conf/split files."""
    name = dataset.split("_", 1)[1]
    stems = {p.stem.split("_", 1)[1].lower(): p for p in (ROOT / "data/adme_fang2023").glob("fang_*.csv")}
    csv = stems[name]
    return csv, csv.with_suffix(".json")


def raw_csv(dataset: str, out: Path) -> Path:
    """<out>/data/<dataset>_raw.csv: the endpoint's rows with target = 10**target (same order)."""
    path = out / "data" / f"{dataset}_raw.csv"
    if not path.exists():
        frame = pd.read_csv(endpoint(dataset)[0])
        frame["target"] = 10.0 ** frame["target"]
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, float_format="%.10g")
    return path


def log_scores(run: Path, dataset: str, model: str) -> dict:
    """MAE in log10 units on valid (best checkpoint, molgnn.predict) and test (test_predictions.csv)."""
    from molgnn.predict import predict_file

    csv, split_path = endpoint(dataset)
    frame, split = pd.read_csv(csv), json.loads(split_path.read_text())
    raw = model != "log"
    floor = float(10.0 ** frame["target"].iloc[split["train"]].min())
    valid = frame.iloc[split["valid"]]
    smi = run / "valid.smi"
    smi.write_text("\n".join(valid["smiles"]) + "\n")
    predict_file(
        str(run / "checkpoints" / "best.ckpt"), smi, run / "valid_pred.csv", progress=False, num_workers=0
    )
    val_pred = pd.read_csv(run / "valid_pred.csv")["target"].to_numpy()
    test = pd.read_csv(run / "test_predictions.csv")
    test_pred, test_true = test["target_pred"].to_numpy(), test["target"].to_numpy()
    out = {}
    for key, pred, true in (
        ("valid", val_pred, valid["target"].to_numpy()),
        ("test", test_pred, np.log10(test_true) if raw else test_true),
    ):
        if raw:
            out[f"{key}_clipped"] = int(np.sum(pred <= floor))
            pred = np.log10(np.maximum(pred, floor))
        out[f"{key}_mae_log"] = float(np.nanmean(np.abs(pred - true)))
    return out


def run_grid(args) -> None:
    for seed in args.seeds:
        for dataset in [d for d in ORDER if d in args.datasets]:
            for model, extra in MODELS.items():
                d = args.out / dataset / f"{model}_s{seed}"
                if (d / "scores.json").exists():
                    continue
                data = [] if model == "log" else [f"data.path={raw_csv(dataset, args.out)}"]
                over = [f"data={dataset}", *data, *extra, f"seed={seed}", "uncertainty=none", "logger=none"]
                over += [
                    "diagnostics_molecules=0",
                    *([f"trainer.max_epochs={args.epochs}"] if args.epochs else []),
                ]
                metrics = run_train(over, d, args.threads)
                scores = {**log_scores(d, dataset, model), "metrics": metrics}
                (d / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
                print(
                    f"{dataset} {model} s{seed}: valid {scores['valid_mae_log']:.4f} test "
                    f"{scores['test_mae_log']:.4f} ({metrics.get('target_transform', {})})",
                    flush=True,
                )


def collect(out: Path) -> dict:
    """{(dataset, model): {seed: scores}} of the finished runs."""
    found: dict = {}
    for path in sorted(out.glob("*/*_s*/scores.json")):
        dataset, (model, seed) = path.parts[-3], path.parts[-2].rsplit("_s", 1)
        found.setdefault((dataset, model), {})[int(seed)] = json.loads(path.read_text())
    return found


def _cell(runs: list[dict], key: str) -> str:
    vals = [r[key] for r in runs]
    sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
    return f"{statistics.mean(vals):.3f}{sd}"


def report(out: Path) -> str:
    found = collect(out)
    rows, seeds_used, ratios = [], set(), []
    for dataset in [d for d in ORDER if any((d, m) in found for m in MODELS)]:
        seeds = sorted(set.intersection(*(set(found.get((dataset, m), {})) for m in MODELS)))
        if not seeds:
            continue
        seeds_used.update(seeds)
        runs = {m: [found[(dataset, m)][s] for s in seeds] for m in MODELS}
        chosen = sorted({r["metrics"]["target_transform"]["target"] for r in runs["raw_auto"]})
        base = statistics.mean(r["test_mae_log"] for r in runs["log"])
        none, auto = (
            statistics.mean(r["test_mae_log"] for r in runs[m]) / base - 1 for m in ("raw_none", "raw_auto")
        )
        ratios.append((none, auto))
        clipped = sum(r["test_clipped"] for r in runs["raw_none"])
        rows.append(
            [
                dataset,
                ", ".join(map(str, seeds)),
                *(f"{_cell(runs[m], 'valid_mae_log')} / {_cell(runs[m], 'test_mae_log')}" for m in MODELS),
                f"{100 * none:+.1f}%",
                f"{100 * auto:+.1f}% ({'within' if auto <= BAR else 'NOT within'} 5%)",
                ", ".join(chosen),
                str(clipped),
            ]
        )
    if ratios:
        mean_none, mean_auto = (statistics.mean(r[i] for r in ratios) for i in (0, 1))
        rows.append(["mean", "", "", "", "", f"{100 * mean_none:+.1f}%", f"{100 * mean_auto:+.1f}%", "", ""])
    header = ["endpoint", "seeds", *(f"{LABELS[m]}: valid / test MAE" for m in MODELS)]
    header += ["raw none vs log10 values (test)", "raw auto vs log10 values (test)", "auto chose"]
    header += ["raw none test preds clipped"]
    return "\n".join(
        [
            "# Targets in raw units (bench/bench_target_transform.py)",
            "",
            "Biogen ADME endpoints turned back into raw units (10**target), same split files. Default model "
            f"(uncertainty=none, no diagnostics), seeds {sorted(seeds_used)}. MAE in log10 units on the valid "
            "and test splits (mean ± sd over seeds): log10(prediction) vs the stored log10 value; raw-unit "
            "predictions at or below the smallest raw training value are clipped to it before the log (count "
            "of clipped raw-none test predictions, summed over seeds, in the last column). Bar: raw auto within 5% of the model "
            "trained on the log10 values (test).",
            "",
            "Command: `OMP_NUM_THREADS=1 python bench/bench_target_transform.py --parallel 1 --seeds 0 1 2 "
            "--out bench_runs/target_transform`, then `--report-only --results bench/results/target_transform.md` "
            "(2-core CPU shared with other work, one run at a time; seeds in the table are the ones finished).",
            "",
            markdown_table(header, rows),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(ORDER), choices=list(ADME_DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (only 1 is implemented)")
    add_grid_arguments(p, "target_transform")
    run_grid_and_report(p.parse_args(), run_grid, report)


if __name__ == "__main__":
    main()
