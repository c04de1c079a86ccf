"""Pretraining: corruptions, each objective learns on a tiny corpus, descriptors, pretrain -> export ->
import -> fine-tune, resume, attribute masking on other graph constructions (the corpus and the shipped
encoders: test_pretrain_corpus.py)."""

import json
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from molgnn.checkpoint import load_encoder
from molgnn.data.unlabeled import UnlabeledDataModule
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.featurize.descriptors import DescriptorScaler, compute_descriptors
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.tasks.pretrain import (
    AttributeMasking,
    Contrastive,
    DescriptorPrediction,
    PretrainContext,
    node_width,
)
from molgnn.tasks.pretrain.augment import mask_atoms, random_bond_keep, remove_subgraph, subgraph_nodes
from conftest import ESOL_CSV

SPEC = default_spec()
TINY = [
    "encoder.hidden_dim=32",
    "data.batch_size=32",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "data.featurize_workers=0",
]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["pretrain=attr_mask", "trainer=gpu"],
        ["pretrain=contrastive"],
        ["pretrain=descriptors", "trainer=ddp", "encoder=gine"],
        ["pretrain=all"],
    ],
)
def test_pretrain_configs_compose_and_build(compose, overrides):
    from hydra.utils import instantiate

    from molgnn.cli.pretrain import build_objectives

    cfg = compose("pretrain", overrides)
    encoder = instantiate(cfg.encoder)
    modules, weights = build_objectives(
        cfg, PretrainContext(encoder.out_dim, encoder.spec, num_descriptors=5)
    )
    assert modules and set(modules) == set(weights)
    if "pretrain=all" in overrides:
        assert set(modules) == {"descriptors", "attr_mask", "contrastive"}
    assert cfg.data.descriptors == any(isinstance(m, DescriptorPrediction) for m in modules.values())
    # the 9-set dev suite's test molecules: 3 MoleculeNet scaffold test splits + the 6 Biogen ADME test splits
    excluded = [Path(e.path).name for e in cfg.data.exclude]
    assert len(excluded) == 9 and cfg.data.exclude_enabled
    assert {"esol.csv", "fang_HLM.csv", "fang_rPPB.csv"} <= set(excluded)
    assert all(list(e["keys"]) == ["test"] for e in cfg.data.exclude)
    if "trainer=gpu" in overrides or "trainer=ddp" in overrides:
        assert (
            cfg.trainer.accelerator == "gpu"
            and cfg.trainer.max_epochs == compose("pretrain").trainer.max_epochs
        )


def _batch(smiles=("CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1")):
    return Batch.from_data_list([smiles_to_graph(s, SPEC) for s in smiles])


def test_masking_uses_unknown_buckets_and_keeps_the_input():
    batch = _batch()
    nodes = torch.zeros(batch.num_nodes, dtype=torch.bool)
    nodes[[0, 5]] = True
    out = mask_atoms(batch, nodes, SPEC, edge_mask=nodes[batch.edge_index[0]])
    assert out.x[0].tolist() == [f.unknown_index for f in SPEC.atom_features]
    assert torch.equal(out.x[~nodes], batch.x[~nodes]) and not torch.equal(out.x, batch.x)
    assert (
        out.edge_attr[nodes[batch.edge_index[0]]]
        == torch.tensor([f.unknown_index for f in SPEC.bond_features])
    ).all()
    assert batch.x[0, 0] != SPEC.atom_features[0].unknown_index  # input untouched


def test_bond_deletion_and_subgraph_removal_keep_reverse_pairs():
    torch.manual_seed(0)
    batch = _batch()
    keep = random_bond_keep(batch.num_edges, 0.5)
    assert torch.equal(keep[0::2], keep[1::2])
    out = remove_subgraph(batch, 0.3, SPEC)
    src, dst = out.edge_index
    assert torch.equal(src[0::2], dst[1::2]) and torch.equal(dst[0::2], src[1::2])
    nodes = subgraph_nodes(batch, 0.3)
    per_graph = torch.bincount(batch.batch[nodes], minlength=batch.num_graphs)
    assert (per_graph >= 1).all()
    assert out.num_edges < batch.num_edges


@pytest.fixture
def corpus(fixtures, tmp_path):
    dm = UnlabeledDataModule(
        fixtures / "pretrain_200.csv",
        SPEC,
        smiles_col="SMILES",
        batch_size=64,
        featurize_workers=0,
        cache_dir=tmp_path / "cache",
        descriptors=True,
        descriptor_names=["MolWt", "MolLogP", "TPSA", "NumHDonors", "RingCount", "NumHAcceptors"],
    )
    dm.setup()
    return dm


@pytest.mark.parametrize(
    "make",
    [
        lambda ctx: AttributeMasking(ctx),
        lambda ctx: Contrastive(ctx, proj_dim=16),
        lambda ctx: DescriptorPrediction(ctx, hidden_dim=32),
        lambda ctx: DescriptorPrediction(ctx, hidden_dim=0),
    ],
    ids=["attr_mask", "contrastive", "descriptors", "descriptors_linear_head"],
)
@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_objective_loss_is_finite_and_decreases(corpus, make, family):
    torch.manual_seed(0)
    encoder = family(SPEC, hidden_dim=32, num_layers=2)
    objective = make(PretrainContext(encoder.out_dim, SPEC, corpus.num_descriptors))
    batch = next(iter(corpus.train_dataloader()))
    opt = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=1e-2)
    losses = []
    for _ in range(25):
        loss, logs = objective(encoder, batch)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # contrastive starts near log(2B - 1) and its views are re-drawn every step: a smaller relative drop
    assert np.mean(losses[-5:]) < (0.95 if isinstance(objective, Contrastive) else 0.8) * np.mean(
        losses[:5]
    ), losses


def test_linear_head_is_one_linear_map():
    ctx = PretrainContext(32, SPEC, num_descriptors=7)
    assert isinstance(DescriptorPrediction(ctx, hidden_dim=0).head, torch.nn.Linear)
    assert isinstance(DescriptorPrediction(ctx, hidden_dim=16).head, torch.nn.Sequential)


def test_descriptor_scaler_drops_constant_and_failing_columns():
    values = np.array([[1.0, 5.0, np.nan, 1e3], [2.0, 5.0, np.nan, 2e3], [3.0, 5.0, 1.0, np.nan]] * 50)
    scaler = DescriptorScaler.fit(values, ["a", "const", "fails", "mostly"], min_finite=0.6)
    assert scaler.names == ["a", "mostly"]
    z = scaler.transform(values)
    assert z.shape == (150, 2) and np.isfinite(z).all() and abs(z[:, 0].mean()) < 1e-6
    again = DescriptorScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert np.allclose(again.transform(values), z)
    raw = compute_descriptors(["CCO", "not a smiles"], ["MolWt", "NumHDonors"], num_workers=0)
    assert np.allclose(raw[0], [46.069, 1], atol=1e-3) and np.isnan(raw[1]).all()
    # prediction recomputes a head's descriptors from the header's scaler dict alone
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN(CC)CC", "OCC(O)CO"]
    names = ["MolWt", "NumHDonors", "NumRadicalElectrons", "TPSA"]
    fitted = DescriptorScaler.fit(compute_descriptors(smiles, names, 0), names)
    assert fitted.names == ["MolWt", "NumHDonors", "TPSA"]  # constant NumRadicalElectrons dropped
    restored = DescriptorScaler.from_dict(fitted.to_dict())
    assert np.allclose(
        restored.transform_smiles(smiles), fitted.transform(compute_descriptors(smiles, names, 0))
    )


@pytest.mark.slow
def test_pretrain_export_import_finetune(compose, fixtures, tmp_path):
    from molgnn.cli.pretrain import pretrain
    from molgnn.cli.train import train

    cfg = compose(
        "pretrain",
        [
            f"data.path={fixtures / 'pretrain_200.csv'}",
            "trainer.max_epochs=2",
            "data.descriptor_names=[MolWt,MolLogP,TPSA,RingCount]",
            *TINY,
        ],
    )
    header = pretrain(cfg, tmp_path / "pre")
    assert header["steps"] == 12 and header["corpus"]["size"] == 200
    assert [o["name"] for o in header["objectives"]] == ["descriptors", "attr_mask"]
    blob = torch.load(tmp_path / "pre" / "encoder.pt", weights_only=True)
    assert blob["molgnn"]["kind"] == "encoder" and not any(
        k.startswith("objectives") for k in blob["state_dict"]
    )
    assert blob["molgnn"]["pretraining"]["corpus"]["descriptors"] == ["MolWt", "MolLogP", "TPSA", "RingCount"]
    encoder = load_encoder(tmp_path / "pre" / "encoder.pt", expect_spec=SPEC)
    ckpt_encoder = load_encoder(tmp_path / "pre" / "checkpoints" / "last.ckpt")
    for a, b in zip(encoder.state_dict().values(), ckpt_encoder.state_dict().values()):
        assert torch.equal(a, b)

    tcfg = compose(
        "train",
        [
            "encoder=pretrained",
            f"encoder.path={tmp_path / 'pre' / 'encoder.pt'}",
            *ESOL_CSV,
            "trainer.max_epochs=2",
            "head.hidden_dim=16",
            "~callbacks.rich_progress_bar",
            "++data.descriptors=true",
            "++data.descriptor_names=[MolWt,MolLogP]",
        ],
    )
    metrics = train(tcfg, tmp_path / "fine")
    assert np.isfinite(metrics["test/rmse"])
    model = torch.load(tmp_path / "fine" / "checkpoints" / "last.ckpt", weights_only=True)["molgnn"]
    assert model["pretraining"]["objectives"][0]["name"] == "descriptors"
    assert model["heads"][0]["descriptors"]["names"] == ["MolWt", "MolLogP"]
    assert model["heads"][0]["args"]["in_dim"] == 32 + 2


@pytest.mark.slow
def test_pretrain_resumes_from_a_step_checkpoint(compose, fixtures, tmp_path):
    from molgnn.cli.pretrain import pretrain

    base = [
        f"data.path={fixtures / 'pretrain_200.csv'}",
        "pretrain=attr_mask",
        "checkpoint_every_n_steps=4",
        *TINY,
    ]
    first = pretrain(compose("pretrain", [*base, "trainer.max_epochs=1"]), tmp_path / "a")
    assert first["steps"] == 6
    steps = sorted(p.name for p in (tmp_path / "a" / "checkpoints").glob("step*.ckpt"))
    assert steps == ["step4.ckpt"]
    resumed = pretrain(
        compose(
            "pretrain",
            [*base, "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}"],
        ),
        tmp_path / "b",
    )
    assert resumed["steps"] == 12 and resumed["epochs"] == 2
    mid = torch.load(tmp_path / "a" / "checkpoints" / "step4.ckpt", weights_only=True)
    assert mid["global_step"] == 4 and mid["molgnn"]["kind"] == "pretrain"
    # from a mid-epoch step checkpoint: the epoch continues where it stopped (no step is redone or lost)
    middle = pretrain(
        compose(
            "pretrain",
            [*base, "trainer.max_epochs=1", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'step4.ckpt'}"],
        ),
        tmp_path / "c",
    )
    assert middle["steps"] == 6


@pytest.mark.slow
def test_pretrain_resumed_mid_epoch_ends_on_the_uninterrupted_weights(compose, fixtures, tmp_path):
    """Stopped after step 4 of a 6-step epoch and resumed: the epoch finishes on the molecules it had not
    seen, in the interrupted run's order and with its random masks, so the encoder is the same tensor for
    tensor (before the resumable loader, the resumed epoch started a new shuffle)."""
    from molgnn.cli.pretrain import pretrain

    base = [
        f"data.path={fixtures / 'pretrain_200.csv'}",
        "pretrain=attr_mask",
        "checkpoint_every_n_steps=4",
        "callbacks.step_checkpoint.save_top_k=-1",  # keep step4.ckpt
        "trainer.max_epochs=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *TINY,
    ]
    pretrain(compose("pretrain", base), tmp_path / "whole")
    step4 = tmp_path / "whole" / "checkpoints" / "step4.ckpt"
    saved = torch.load(step4, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert saved == [{"seed": ANY, "items_done": 4 * 32}]  # the epoch's order and how far it got
    pretrain(compose("pretrain", [*base, f"ckpt_path={step4}"]), tmp_path / "resumed")
    whole = torch.load(tmp_path / "whole" / "encoder.pt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "encoder.pt", weights_only=True)["state_dict"]
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.parametrize("construction", ["line_graph", "motifs", "explicit_h"])
def test_attribute_masking_follows_the_graph_construction(fixtures, tmp_path, construction):
    from molgnn.featurize.constructions import construction_spec

    spec = construction_spec(construction)
    dm = UnlabeledDataModule(
        fixtures / "pretrain_200.csv", spec, smiles_col="SMILES", batch_size=64, featurize_workers=0,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    dm.setup()
    encoder = DMPNNEncoder(spec, hidden_dim=32, num_layers=2)
    objective = AttributeMasking(PretrainContext(encoder.out_dim, spec))
    node_target = spec.atom_features[objective.atom_col].name
    edge_target = spec.bond_features[objective.bond_col].name
    # a line graph's nodes are bonds: they predict their bond type, and its edges (atoms) the element
    expected = ("bond_type", "atomic_num") if construction == "line_graph" else ("atomic_num", "bond_type")
    assert (node_target, edge_target) == expected
    loss, logs = objective(encoder, next(iter(dm.train_dataloader())))
    assert torch.isfinite(loss) and 0.0 <= float(logs["atom_acc"]) <= 1.0
    loss.backward()
    assert all(p.grad is not None for p in objective.atom_head.parameters())


@pytest.mark.parametrize(
    "encoder",
    [
        DMPNNEncoder(SPEC, hidden_dim=16, num_layers=2, readout="sum+mean"),
        GINEEncoder(SPEC, hidden_dim=16, num_layers=2, readout="sum+mean+max"),
    ],
    ids=["dmpnn-sum+mean", "gine-sum+mean+max"],
)
def test_masking_reads_atom_states_under_a_multi_pooling_readout(encoder):
    # the graph embedding is k x wider than an atom state: the atom head is sized from the atom states
    context = PretrainContext(encoder.out_dim, SPEC, node_dim=node_width(encoder))
    assert context.node_dim == 16 and encoder.out_dim > 16
    loss, logs = AttributeMasking(context, mask_rate=0.5)(encoder, _batch())
    assert torch.isfinite(loss) and 0.0 <= float(logs["atom_acc"]) <= 1.0
