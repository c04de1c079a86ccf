"""Graph-variant benchmark (issue #20): does a model's prediction depend on how the molecule was written down?

    python bench/bench_graph_variants.py                              # 4 sets x 3 seeds (hours on 2 CPU cores)
    python bench/bench_graph_variants.py --datasets esol --seeds 0 --epochs 1     # smoke run
    python bench/bench_graph_variants.py --report-only --results graph_variants.md

For each data set and seed it trains (molgnn-train subprocesses, bench/common.py) one plain model per
construction of CONSTRUCTIONS (``graph=<c>``), one variant-tolerant model per --tolerant main construction
(``graph=<main> graph.augment=[the others]``: one construction drawn per molecule per epoch) and one paired
model per --paired main construction (``graph.pairs=true graph.consistency=<w>``: the main graph and one other
per molecule, both supervised, their predictions pulled together), then evaluates every model's best
checkpoint on the test split rebuilt under every construction. Prints, per data set, a matrix: rows =
construction(s) used in training, columns = construction used at evaluation, cells = test RMSE (mean ± sd over
seeds), with the issue's bars: variant-tolerant off-diagonal cells within 5% of the diagonal, at most 2% cost
on the native construction (tolerant or paired on its main construction vs the plain model of that
construction).

Every run goes into <out>/<dataset>/<model>_s<seed>/ and is skipped when its metrics.json exists; its
cross-evaluation is kept in cross_eval.json beside it, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_grid_arguments, dataset_overrides, markdown_table, run_grid_and_report, run_train  # noqa: E402

CONSTRUCTIONS = ("atoms", "explicit_h", "kekule")  # the set sharing molgnn's v1 embedding tables
DATASETS = ("esol", "lipophilicity", "adme_sol", "adme_hlm")


def models(tolerant: list[str], paired: list[str], consistency: float) -> dict[str, list[str]]:
    """model name -> its graph overrides: plain-<c> per construction, tolerant-<main> per tolerant main (one
    construction drawn per molecule per epoch), paired-<main> per paired main (graph.pairs: the main graph and
    one other per molecule, both supervised, with graph.consistency)."""
    out = {f"plain-{c}": [f"graph={c}"] for c in CONSTRUCTIONS}
    for main in tolerant:
        others = ",".join(c for c in CONSTRUCTIONS if c != main)
        out[f"tolerant-{main}"] = [f"graph={main}", f"graph.augment=[{others}]"]
    for main in paired:
        others = ",".join(c for c in CONSTRUCTIONS if c != main)
        out[f"paired-{main}"] = [
            f"graph={main}",
            f"graph.augment=[{others}]",
            "graph.pairs=true",
            f"graph.consistency={consistency}",
        ]
    return out


def run_dir(out: Path, dataset: str, model: str, seed: int) -> Path:
    return out / dataset / f"{model}_s{seed}"


def cross_evaluate(run: Path, threads: int | None) -> dict[str, float]:
    """Test RMSE of the run's best checkpoint on its test split rebuilt under each construction.

    Deliberately bypasses the checkpoint's construction check: a checkpoint records the spec it was trained
    on and ``molgnn.load``/``load_encoder`` refuse graphs of another construction. Here the encoder and head
    (``load_predictor``) are run directly on graphs built with the model's own spec under another
    construction; that is only meaningful because these constructions share the embedding tables
    (``molgnn.data.augment.augment_specs`` checks it)."""
    cached = run / "cross_eval.json"
    if cached.exists():
        return json.loads(cached.read_text())
    import numpy as np
    import pandas as pd
    import torch
    from torch_geometric.data import Batch

    from molgnn.data.augment import augment_specs
    from molgnn.data.graphs import featurize_smiles
    from molgnn.predictor import load_predictor

    if threads:
        torch.set_num_threads(threads)
    predictor = load_predictor(run / "checkpoints" / "best.ckpt").eval()
    frame = pd.read_csv(run / "test_predictions.csv")  # the test split: row, smiles, <target>, <target>_pred
    targets = predictor.columns
    truth = frame[targets].to_numpy(dtype=np.float64)
    result: dict[str, float] = {}
    for construction in CONSTRUCTIONS:
        spec = (augment_specs(predictor.spec, [construction], key="bench") or (predictor.spec,))[0]
        feats = featurize_smiles(frame["smiles"].tolist(), spec, num_workers=0)
        ok = (feats.graph_index >= 0).numpy()
        preds = []
        for start in range(0, int(ok.sum()), 256):
            batch = Batch.from_data_list(
                [feats.graphs.get(int(g)) for g in feats.graph_index[ok][start : start + 256]]
            )
            preds.append(predictor.predict_batch(batch).double().numpy())
        pred = np.concatenate(preds) if preds else np.zeros((0, len(targets)))
        err = (pred - truth[ok]) ** 2
        result[construction] = float(math.sqrt(np.nanmean(err)))
        if not ok.all():
            result[f"{construction}/unfeaturizable"] = int((~ok).sum())
    cached.write_text(json.dumps(result, indent=2))
    return result


def run_grid(args) -> None:
    grid = {
        name: graph
        for name, graph in models(args.tolerant, args.paired, args.consistency).items()
        if name.split("-", 1)[0] in args.kinds
    }
    for seed in args.seeds:
        for dataset in args.datasets:
            for model, graph in grid.items():
                d = run_dir(args.out, dataset, model, seed)
                over = [
                    *dataset_overrides(dataset),
                    *graph,
                    f"seed={seed}",
                    f"trainer.max_epochs={args.epochs}",
                    "uncertainty=none",
                    "logger=none",
                    "diagnostics_molecules=0",
                ]
                metrics = run_train(over, d, args.threads)
                cells = cross_evaluate(d, args.threads)
                print(
                    f"{dataset} {model} s{seed}: test rmse {metrics['test/rmse']:.4f}; "
                    + ", ".join(f"on {c} {cells[c]:.4f}" for c in CONSTRUCTIONS),
                    flush=True,
                )


def collect(out: Path) -> dict:
    """{(dataset, model): [cross_eval dicts of the finished seeds]}."""
    found: dict = {}
    for path in sorted(out.glob("*/*_s*/cross_eval.json")):
        dataset, model = path.parts[-3], path.parts[-2].rsplit("_s", 1)[0]
        found.setdefault((dataset, model), []).append(json.loads(path.read_text()))
    return found


def _mean(runs: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in runs)


def _cell(runs: list[dict], key: str) -> str:
    vals = [r[key] for r in runs]
    sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
    return f"{statistics.mean(vals):.3f}{sd}"


def _label(model: str) -> str:
    kind, main = model.split("-", 1)
    others = ", ".join(c for c in CONSTRUCTIONS if c != main)
    return {"plain": main, "tolerant": f"{main} + augment [{others}]"}.get(kind, f"{main} + pairs [{others}]")


def report(out: Path) -> str:
    found = collect(out)
    lines = [
        "# Graph-variant benchmark (bench/bench_graph_variants.py)",
        "",
        "Rows: construction used in training (plain: that one; tolerant: its main construction plus the others "
        "drawn per molecule per epoch, graph.augment; paired: each molecule's main graph and one other drawn per "
        "molecule per epoch, both supervised, plus graph.consistency x the squared difference of the two "
        "predictions, graph.pairs). Columns: construction the test split is rebuilt under. "
        "Cells: test RMSE, mean ± sd over seeds.",
        "",
    ]
    for dataset in sorted({k[0] for k in found}):
        for kind in ("plain", "tolerant", "paired"):
            names = [m for (d, m) in found if d == dataset and m.startswith(kind + "-")]
            names.sort(key=lambda m: CONSTRUCTIONS.index(m.split("-", 1)[1]))
            if not names:
                continue
            rows = [[_label(m), *(_cell(found[(dataset, m)], c) for c in CONSTRUCTIONS)] for m in names]
            n = min(len(found[(dataset, m)]) for m in names)
            lines += [
                f"## {dataset}: {kind} training (n={n} seeds)",
                "",
                markdown_table(["trained on \\ evaluated on", *CONSTRUCTIONS], rows),
                "",
                *_gaps(found, dataset, names),
                "",
            ]
    return "\n".join(lines)


def _gaps(found: dict, dataset: str, names: list[str]) -> list[str]:
    """Worst off-diagonal gap per row (bar: <= 5% for tolerant) and the tolerant models' native cost (<= 2%)."""
    out = []
    for m in names:
        runs, main = found[(dataset, m)], m.split("-", 1)[1]
        native = _mean(runs, main)
        worst = max((_mean(runs, c) / native - 1 for c in CONSTRUCTIONS if c != main), default=0.0)
        text = f"- {_label(m)}: worst off-diagonal {100 * worst:+.1f}% of its native cell"
        if not m.startswith("plain-"):
            text += f" ({'within' if worst <= 0.05 else 'NOT within'} 5%)"
            plain = found.get((dataset, f"plain-{main}"))
            if plain:
                cost = native / _mean(plain, main) - 1
                text += (
                    f"; native cost vs plain {main}: {100 * cost:+.1f}% "
                    f"({'within' if cost <= 0.02 else 'NOT within'} 2%)"
                )
        out.append(text)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    for kind, how in (("tolerant", "one drawn per molecule"), ("paired", "graph.pairs")):
        p.add_argument(
            f"--{kind}",
            nargs="+",
            default=["atoms"],
            choices=list(CONSTRUCTIONS),
            help=f"main construction(s) of the {kind} variant-tolerant models ({how}; default: atoms)",
        )
    p.add_argument("--consistency", type=float, default=1.0, help="graph.consistency of the paired models")
    p.add_argument(
        "--kinds",
        nargs="+",
        default=["plain", "tolerant", "paired"],
        choices=["plain", "tolerant", "paired"],
        help="train only these kinds of model (another process may be running the others)",
    )
    add_grid_arguments(p, "graph_variants")
    run_grid_and_report(p.parse_args(), run_grid, report)


if __name__ == "__main__":
    main()
