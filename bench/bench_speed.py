"""Speed of featurization, training and inference of the default model, next to bare RDKit and a matmul.

    python bench/bench_speed.py [--molecules 20000] [--repeats 3]

Everything is measured in this one process run so ratios are fair; run it on an otherwise idle machine
(`uptime`). Reports medians over --repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from rdkit import Chem
from torch_geometric.data import Batch

import molgnn.cli  # noqa: F401  (resolver)
from molgnn.data.graphs import featurize_smiles
from molgnn.nn.heads import MLPHead

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_smiles(n: int) -> list[str]:
    pool = []
    for name in ("esol", "freesolv", "lipophilicity"):
        pool += pd.read_csv(ROOT / f"data/moleculenet/{name}.csv").smiles.tolist()
    return (pool * (n // len(pool) + 1))[:n]


def matmul_flops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    return 2 * 2048**3 / median_time(lambda: torch.mm(a, b), max(repeats, 5))


def dmpnn_flops_per_mol(batches: list[Batch], hidden: int, depth: int, head_hidden: int) -> float:
    """Dense multiply-adds x2 of one forward pass per molecule, averaged over every batch measured
    (embedding lookups not counted). Counting the first batch alone undercounted: the pool starts with
    ESOL's small molecules, about half the atoms and bonds of the average molecule here."""
    edges = sum(b.edge_index.size(1) for b in batches)
    atoms = sum(b.x.size(0) for b in batches)
    mols = sum(b.num_graphs for b in batches)
    return (
        2
        * (
            edges * (depth - 1) * hidden * hidden
            + atoms * hidden * hidden
            + mols * (hidden * head_hidden + head_hidden)
        )
        / mols
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--molecules", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    smiles = load_smiles(args.molecules)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/unused", "paths.cache_dir=/tmp/unused"])
    encoder = instantiate(cfg.encoder)
    spec = encoder.spec
    n = len(smiles)

    t_rdkit = median_time(lambda: [Chem.MolFromSmiles(s) for s in smiles], args.repeats)
    t_feat1 = median_time(lambda: featurize_smiles(smiles, spec, num_workers=0), args.repeats)
    t_featp = median_time(lambda: featurize_smiles(smiles, spec, num_workers=os.cpu_count()), args.repeats)

    feats = featurize_smiles(smiles, spec, num_workers=0)
    graphs = [feats.graphs.get(i) for i in range(len(feats.graphs))]
    head = MLPHead(encoder.out_dim, 1, hidden_dim=cfg.head.hidden_dim)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    bs_train, bs_infer = cfg.data.batch_size, 256
    train_batches = [Batch.from_data_list(graphs[i : i + bs_train]) for i in range(0, min(n, 5000), bs_train)]
    for b in train_batches:
        b.y = torch.randn(b.num_graphs, 1)

    def train_pass():
        encoder.train(), head.train()
        for b in train_batches:
            loss = torch.nn.functional.mse_loss(head(encoder(b)), b.y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    infer_batches = [Batch.from_data_list(graphs[i : i + bs_infer]) for i in range(0, n, bs_infer)]

    @torch.inference_mode()
    def infer_pass():
        encoder.eval(), head.eval()
        for b in infer_batches:
            head(encoder(b))

    train_pass()
    t_train = median_time(train_pass, args.repeats)
    t_infer = median_time(infer_pass, args.repeats)
    n_train = sum(b.num_graphs for b in train_batches)
    peak = matmul_flops(args.repeats)
    dims = (encoder.args["hidden_dim"], encoder.args["num_layers"], cfg.head.hidden_dim)
    per_mol = dmpnn_flops_per_mol(infer_batches, *dims)
    per_mol_train = dmpnn_flops_per_mol(train_batches, *dims)
    rows = [
        ("bare RDKit Chem.MolFromSmiles (1 process)", n / t_rdkit, "1.00x of RDKit"),
        (
            "molgnn featurization (parse + graph, 1 process)",
            n / t_feat1,
            f"{t_rdkit / t_feat1:.2f}x of RDKit",
        ),
        (
            f"molgnn featurization ({os.cpu_count()} worker processes)",
            n / t_featp,
            f"{t_rdkit / t_featp:.2f}x of RDKit",
        ),
        (
            f"training, batch {bs_train} (fwd+bwd+Adam)",
            n_train / t_train,
            f"{3 * per_mol_train * n_train / t_train / peak:.1%} of matmul FLOP/s",
        ),
        (
            f"inference, batch {bs_infer}, pre-featurized",
            n / t_infer,
            f"{per_mol * n / t_infer / peak:.1%} of matmul FLOP/s",
        ),
    ]
    print(
        f"{n} SMILES from the bundled MoleculeNet sets; torch threads {torch.get_num_threads()}; "
        f"encoder {encoder.family} {encoder.args}; dense fp32 matmul {peak / 1e9:.1f} GFLOP/s; "
        f"model {per_mol / 1e6:.2f} MFLOP per molecule forward, averaged over every batch (training counted "
        f"as 3x); load average before the run {load[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    print("| stage | molecules/s | ratio |\n|---|---|---|")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
