"""Noisy nodes (task.noisy_nodes): the masked-atom denoising loss trains the encoder's atom states, never
touches the batch the property head sees, refuses a frozen encoder, and a model trained with it predicts."""

import json

import pandas as pd
import pytest
import torch
from conftest import fit_objective
from torch_geometric.data import Batch

from molgnn.errors import MolgnnError
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.tasks.noisy_nodes import make_noisy_nodes
from molgnn.tasks.pretrain import node_width

SPEC = default_spec()
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "OC(=O)C1CCCCC1N", "CCN(CC)CC", "ClCCBr", "CS(=O)C"]


def _batch() -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, SPEC) for s in SMILES])


@pytest.mark.parametrize(
    "encoder, width",
    [
        (lambda: DMPNNEncoder(SPEC, hidden_dim=24, num_layers=3, readout="sum+mean"), 24),
        (lambda: GINEEncoder(SPEC, hidden_dim=16, num_layers=3, jk="cat"), 48),
    ],
)
def test_node_width_is_the_atom_state_width_not_the_embedding_width(encoder, width):
    enc = encoder()
    enc.train()
    assert node_width(enc) == width and enc.training  # the probe leaves the training mode as it found it
    assert enc.node_embeddings(_batch()).size(1) == width


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_denoising_loss_trains_the_encoder_and_leaves_the_batch_clean(family):
    torch.manual_seed(0)
    encoder = family(SPEC, hidden_dim=32, num_layers=6)
    noisy = make_noisy_nodes(encoder, weight=1.0, rate=0.3, frozen=False)
    batch = _batch()
    x_before, edges_before = batch.x.clone(), batch.edge_attr.clone()
    losses, logs = fit_objective(noisy, encoder, batch, steps=60)
    assert torch.equal(batch.x, x_before) and torch.equal(batch.edge_attr, edges_before)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10  # the atoms learn to name masked neighbours
    assert 0.0 <= float(logs["atom_acc"]) <= 1.0


def _family_specs() -> dict:
    from molgnn.featurize.chemprop import chemprop_spec
    from molgnn.featurize.foreign import hu2020_spec, molclr_spec
    from molgnn.featurize.minimol import minimol_spec

    hu = hu2020_spec()
    return dict(
        gine=SPEC, dmpnn=SPEC, hu2020_gcn=hu, hu2020_sage=hu, hu2020_gat=hu, molclr_gcn=molclr_spec(),
        minimol=minimol_spec(), chemprop=chemprop_spec(),
    )  # fmt: skip


def test_every_encoder_family_gets_a_gradient_from_the_denoising_loss():
    from molgnn.data.graphs import featurize_smiles
    from molgnn.nn import ENCODER_FAMILIES

    specs = _family_specs()
    assert set(specs) == set(ENCODER_FAMILIES)  # a new family must join this test
    for family, cls in ENCODER_FAMILIES.items():
        encoder = cls(specs[family])
        noisy = make_noisy_nodes(encoder, 0.1, 0.3, frozen=False)
        graphs = featurize_smiles(SMILES, encoder.spec, 0).graphs
        loss, _ = noisy(encoder, Batch.from_data_list([graphs.get(i) for i in range(len(SMILES))]))
        loss.backward()
        grads = [p.grad for p in encoder.parameters() if p.grad is not None]
        assert torch.isfinite(loss) and any(g.abs().sum() > 0 for g in grads), family


def test_weight_scales_the_loss():
    encoder = DMPNNEncoder(SPEC, hidden_dim=16, num_layers=2)
    noisy = make_noisy_nodes(encoder, weight=1.0, rate=0.5, frozen=False)
    torch.manual_seed(3)
    one, _ = noisy(encoder, _batch())
    noisy.weight = 0.25
    torch.manual_seed(3)
    quarter, _ = noisy(encoder, _batch())
    assert quarter.item() == pytest.approx(0.25 * one.item(), rel=1e-5)


def test_settings_that_cannot_work_name_the_key():
    encoder = DMPNNEncoder(SPEC, hidden_dim=16, num_layers=2)
    assert make_noisy_nodes(encoder, 0.0, 0.15, frozen=True) is None  # off: nothing to check
    with pytest.raises(MolgnnError, match="task.noisy_nodes .*task.freeze_encoder"):
        make_noisy_nodes(encoder, 0.1, 0.15, frozen=True)
    with pytest.raises(MolgnnError, match="task.noisy_nodes must be >= 0"):
        make_noisy_nodes(encoder, -1.0, 0.15, frozen=False)
    with pytest.raises(MolgnnError, match="task.noisy_nodes_rate"):
        make_noisy_nodes(encoder, 0.1, 0.0, frozen=False)


@pytest.mark.slow
def test_run_with_noisy_nodes_logs_it_and_its_model_predicts(train_tiny):
    from molgnn.predictor import load_models

    run = train_tiny("noisy", "task.noisy_nodes=0.5", "encoder.num_layers=4", "logger=csv")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/rmse"] > 0
    (logged,) = run.rglob("metrics.csv")
    log = pd.read_csv(logged)
    assert log["train/noisy_nodes"].dropna().gt(0).all()  # the denoising loss ran in the training steps
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("noisy_nodes.") for k in state["state_dict"])  # resumable with its head
    (model,) = load_models(run / "checkpoints" / "best.ckpt")  # prediction reads encoder and head only
    assert model.encoder.args["num_layers"] == 4
