"""Retrospective active learning: how fast does each selection strategy find the best 5% of a labeled set?

    OMP_NUM_THREADS=1 python bench/bench_selection.py [--datasets lipophilicity sol] [--seeds 0 1 2]
        [--rounds 15] [--init 0.05] [--batch 0.02] [--members 8] [--beta 1.0] [--no-descriptors] [--out DIR]

Features (computed once per data set, cached under .cache/molgnn/bench_selection/): frozen embeddings of the
default pretrained encoder (models/pretrained/dmpnn_all200k.pt, molgnn.transfer.embed_smiles) concatenated
with RDKit 2D descriptors (molgnn.featurize.descriptors), each column standardized on the whole set (no labels
involved), NaN descriptors set to 0, clipped at ±6; rows whose SMILES the encoder cannot use are dropped.

Loop (per data set, seed, strategy): a seeded random `--init` fraction is labeled; each round a surrogate
is fit on the labeled rows: a bootstrap ensemble of `--members` ridge regressions (alpha chosen once per round by
RidgeCV's efficient leave-one-out on the labeled rows), mean and std over members predicted on the pool; a batch
of `--batch` x N rows is chosen with molgnn.uncertainty.select.rank (top-k of the acquisition score; EI's
`best` is the best label seen), their labels are revealed, and so on for `--rounds` rounds.
Measured: the fraction of the top 5% (highest target values) that has been labeled, against the labeled
fraction. Printed (and written to <out>/selection.md): that fraction at several budgets and the area under the
curve (mean found fraction over the rounds, initial set included), mean ± std over seeds; <out>/selection.png
shows the curves.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, markdown_table, mean_std
from sklearn.linear_model import Ridge, RidgeCV

from molgnn.uncertainty.select import rank

ENCODER = ROOT / "models/pretrained/dmpnn_all200k.pt"
CACHE = ROOT / ".cache/molgnn/bench_selection"
STRATEGIES = ("random", "greedy", "ucb", "thompson", "ei")
ALPHAS = np.logspace(-1, 4, 11)


def dataset_source(name: str) -> tuple[Path, str]:
    """(csv path, target column) of a benchmark data set."""
    if name == "lipophilicity":
        return ROOT / "data/moleculenet/lipophilicity.csv", "logD"
    if name == "sol":  # Biogen solubility (Fang et al. 2023); the repo copy, else the shared one
        candidates = [
            ROOT / "data/adme_fang2023/splits/fang_Sol.csv",
            ROOT / "data/adme_fang2023/fang_Sol.csv",
            ROOT.parent / "shared/data/adme_fang2023/splits/fang_Sol.csv",
        ]
        return next((p for p in candidates if p.is_file()), candidates[-1]), "target"
    raise SystemExit(f"unknown data set {name!r}")


def features(name: str, use_descriptors: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Standardized features float32 [N, d] and targets float64 [N] of the valid rows; a note on the source."""
    path, target = dataset_source(name)
    frame = pd.read_csv(path)
    smiles, y = frame["smiles"].astype(str).tolist(), frame[target].to_numpy(np.float64)
    key = hashlib.sha256(path.read_bytes() + ENCODER.read_bytes()).hexdigest()[:12]
    cache = CACHE / f"{name}-{key}.npz"
    if cache.exists():
        blob = np.load(cache)
        emb, desc = blob["emb"], blob["desc"]
    else:
        from molgnn.checkpoint import load_encoder
        from molgnn.featurize.descriptors import compute_descriptors
        from molgnn.transfer import embed_smiles

        start = time.perf_counter()
        emb = embed_smiles(load_encoder(str(ENCODER)), smiles, batch_size=256, num_workers=0).values
        desc = compute_descriptors(smiles, num_workers=0)
        print(
            f"[{name}] featurized {len(smiles)} molecules in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, emb=emb, desc=desc)
    keep = ~np.isnan(emb).any(axis=1) & np.isfinite(y)
    parts = [emb[keep]] + ([desc[keep]] if use_descriptors else [])
    x = np.concatenate(parts, axis=1).astype(np.float64)
    x = x[:, np.nanstd(x, axis=0) > 1e-8]
    x = np.nan_to_num((x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0), nan=0.0).clip(-6, 6)
    shown = path.relative_to(ROOT) if ROOT in path.parents else Path("..") / path.relative_to(ROOT.parent)
    note = f"{shown} ({target}), {int(keep.sum())} of {len(y)} rows, {x.shape[1]} features"
    return x.astype(np.float32), y[keep], note


def surrogate(x_lab, y_lab, x_pool, members: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap ridge ensemble: mean and std [P] over ``members`` fits on resampled labeled rows."""
    alpha = RidgeCV(alphas=ALPHAS).fit(x_lab, y_lab).alpha_
    preds = np.empty((members, len(x_pool)))
    for m in range(members):
        idx = rng.integers(0, len(y_lab), len(y_lab))
        preds[m] = Ridge(alpha=alpha).fit(x_lab[idx], y_lab[idx]).predict(x_pool)
    return preds.mean(axis=0), preds.std(axis=0, ddof=1)


def surrogate_check(x, y, fraction: float, members: int, seed: int = 0) -> str:
    """The surrogate on a seeded random ``fraction`` of the rows, scored on the rest: R^2 and
    Spearman(std, |error|)."""
    from scipy.stats import spearmanr

    order = np.random.default_rng(seed).permutation(len(y))
    lab, pool = order[: int(round(fraction * len(y)))], order[int(round(fraction * len(y))) :]
    mean, std = surrogate(x[lab], y[lab], x[pool], members, np.random.default_rng(seed))
    r2 = 1 - np.mean((mean - y[pool]) ** 2) / np.var(y[pool])
    rho = spearmanr(std, np.abs(mean - y[pool])).statistic
    return f"R² {r2:.2f}, Spearman(std, |error|) {rho:.2f} trained on {fraction:.0%}"


def campaign(x, y, strategy: str, seed: int, args) -> np.ndarray:
    """Found fraction of the top 5% after the initial set and after each round: float [rounds + 1]."""
    n = len(y)
    top = set(np.argsort(-y, kind="stable")[: int(round(0.05 * n))].tolist())
    rng = np.random.default_rng(seed)
    labeled = rng.permutation(n)[: int(round(args.init * n))].tolist()  # same start for every strategy
    batch = int(round(args.batch * n))
    found = [len(top.intersection(labeled)) / len(top)]
    fit_rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    for r in range(args.rounds):
        pool = np.setdiff1d(np.arange(n), labeled)
        if strategy == "random":
            mean, std = np.zeros(len(pool)), None
        else:
            mean, std = surrogate(x[labeled], y[labeled], x[pool], args.members, fit_rng)
        picked = rank(
            mean,
            std,
            strategy,
            batch,
            maximize=True,
            beta=args.beta,
            best=float(y[labeled].max()),
            seed=np.random.default_rng([seed, r, 7]),
        )
        labeled += pool[picked].tolist()
        found.append(len(top.intersection(labeled)) / len(top))
    return np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["lipophilicity", "sol"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--init", type=float, default=0.05)
    parser.add_argument("--batch", type=float, default=0.02)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--no-descriptors", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    command = " ".join(["OMP_NUM_THREADS=1 python bench/bench_selection.py", *map(shlex.quote, sys.argv[1:])])

    checkpoints = sorted({r for r in (0, 2, 5, 10, args.rounds) if r <= args.rounds})
    curves, notes, sections = {}, [], []
    start = time.perf_counter()
    for name in args.datasets:
        x, y, note = features(name, not args.no_descriptors)
        checks = "; ".join(surrogate_check(x, y, f, args.members) for f in (args.init, 0.35))
        notes.append(f"- {name}: {note}; surrogate on a random split: {checks}")
        rows = []
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            runs = np.stack(
                [campaign(x, y, strategy, seed, args) for seed in args.seeds]
            )  # [seeds, rounds+1]
            curves[name, strategy] = runs
            cells = [mean_std(runs[:, r].tolist()) for r in checkpoints]
            rows.append([strategy, *cells, mean_std(runs.mean(axis=1).tolist())])
            print(f"[{name}] {strategy}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        header = ["strategy", *[f"@ {args.init + args.batch * r:.0%}" for r in checkpoints], "AUC"]
        sections.append(f"### {name}\n\n" + markdown_table(header, rows))

    elapsed = time.perf_counter() - start
    text = "\n".join(
        [
            "# Retrospective selection: fraction of the top 5% found vs labeled fraction",
            "",
            f"Command: `{command}` ({elapsed:.0f} s on this machine, features cached)",
            "",
            f"Start: seeded random {args.init:.0%} labeled; {args.rounds} rounds of {args.batch:.0%} of the set each; "
            f"surrogate: bootstrap ensemble of {args.members} ridge regressions (RidgeCV alpha) on frozen "
            f"dmpnn_all200k embeddings{'' if args.no_descriptors else ' + RDKit 2D descriptors'}; ucb beta "
            f"{args.beta}; ei over the best label seen. Mean ± std over seeds {args.seeds}. "
            f"AUC: found fraction averaged over the {args.rounds + 1} checkpoints (initial set included); "
            f"random expects about the labeled fraction.",
            "",
            *notes,
            "",
            "\n\n".join(sections),
            "",
            "![curves](selection.png)",
            "",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selection.md").write_text(text)
    plot(curves, args, args.out / "selection.png")


def plot(curves: dict, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.datasets), figsize=(5.5 * len(args.datasets), 4.2), squeeze=False)
    xs = [args.init + args.batch * r for r in range(args.rounds + 1)]
    for ax, name in zip(axes[0], args.datasets):
        for strategy in STRATEGIES:
            runs = curves[name, strategy]
            mean, std = runs.mean(axis=0), runs.std(axis=0)
            ax.plot(xs, mean, marker=".", label=strategy)
            ax.fill_between(xs, mean - std, mean + std, alpha=0.15)
        ax.set(title=name, xlabel="labeled fraction", ylabel="fraction of top 5% found")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
