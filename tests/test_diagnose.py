"""Oversmoothing diagnostics: each measure on hand-built graphs with known answers, the per-layer record of
`diagnose` (native and foreign encoders), the diagnostics a training run writes and `molgnn-diagnose`."""

import json
import math
import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Data

from conftest import FIXTURES
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.nn import GINEEncoder
from molgnn.nn.oversmoothing import (
    dirichlet_energy,
    effective_rank,
    layer_measures,
    node_cosine,
    pairwise_cosine,
    relative_dirichlet_energy,
)
from molgnn.tasks.diagnose import diagnose, sample_molecules

SPEC = default_spec()
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C", "OC(=O)C1CCCCC1N", "CCN(CC)CC"]
PATH3 = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a 3-atom chain, both directions of each bond


def test_identical_node_vectors_have_zero_energy_and_cosine_one():
    x = torch.tensor([[1.0, 2.0, -1.0]]).repeat(3, 1)
    batch = torch.zeros(3, dtype=torch.long)
    assert dirichlet_energy(x, PATH3, batch, 1) == 0.0
    assert relative_dirichlet_energy(x, PATH3, batch, 1) == 0.0
    assert node_cosine(x, batch, 1) == pytest.approx(1.0)
    assert effective_rank(x) == pytest.approx(1.0)


def test_measures_on_known_graphs():
    # two atoms 0 and 1 on one bond: ||x0 - x1||^2 = 2, one bond, two atoms -> energy 1
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    edge = torch.tensor([[0, 1], [1, 0]])
    batch = torch.zeros(2, dtype=torch.long)
    assert dirichlet_energy(x, edge, batch, 1) == pytest.approx(1.0)
    assert node_cosine(x, batch, 1) == pytest.approx(0.0)  # orthogonal atoms
    assert relative_dirichlet_energy(10 * x, edge, batch, 1) == pytest.approx(1.0)  # scale-free
    assert dirichlet_energy(10 * x, edge, batch, 1) == pytest.approx(100.0)
    assert effective_rank(torch.eye(4)) == pytest.approx(4.0)
    assert pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    # a single-atom molecule has no pairs: it is left out of the cosine, not counted as 1
    assert math.isnan(node_cosine(torch.ones(1, 3), torch.zeros(1, dtype=torch.long), 1))
    m = layer_measures(x, edge, batch, 1)
    assert set(m) >= {"dirichlet_energy", "node_cosine", "node_effective_rank", "graph_effective_rank"}


def test_diagnose_reports_every_layer_and_restores_training_mode():
    torch.manual_seed(0)
    encoder = GINEEncoder(SPEC, hidden_dim=16, num_layers=4, residual=False).train()
    graphs = [smiles_to_graph(s, SPEC) for s in SMILES]
    record = diagnose(encoder, graphs, max_molecules=4)
    assert encoder.training and record["molecules"] == 4 and len(record["layers"]) == 5
    assert record["atoms"] == sum(g.num_nodes for g in sample_molecules(graphs, 4))
    assert record["summary"]["last_node_cosine"] == record["layers"][-1]["node_cosine"]


def test_foreign_encoder_layers_are_read_through_hooks():
    from molgnn.transfer import load_foreign_encoder

    encoder = load_foreign_encoder("hu2020_gcn", None, num_layers=3, hidden_dim=16)
    graphs = [smiles_to_graph(s, encoder.spec) for s in SMILES]
    record = diagnose(encoder, [Data(**g.to_dict()) for g in graphs])
    assert len(record["layers"]) == 4  # three convolutions, then the final node embeddings
    assert all(row["dim"] == 16 for row in record["layers"])


@pytest.mark.slow
def test_training_run_writes_diagnostics(train_tiny):
    run = train_tiny("deep", "encoder.num_layers=5", "encoder.virtual_node=true", "encoder.residual=true")
    record = json.loads((run / "diagnostics.json").read_text())
    assert len(record["layers"]) == 6 and record["encoder_args"]["virtual_node"] is True
    assert (run / "diagnostics.png").stat().st_size > 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["diagnostics/last_node_cosine"] == pytest.approx(record["summary"]["last_node_cosine"])
    diag = [sys.executable, "-m", "molgnn.cli.diagnose", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]
    ok = subprocess.run(
        [*diag, f"input.path={FIXTURES / 'esol_small.csv'}", f"hydra.run.dir={run / 'diag'}"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads((run / "diag" / "diagnostics.json").read_text())["layers"]) == 6
    bad = subprocess.run(
        [*diag, f"input.path={run / 'missing.csv'}", f"hydra.run.dir={run / 'diag2'}"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode != 0 and "missing.csv: file not found" in bad.stderr and "Traceback" not in bad.stderr
    )
