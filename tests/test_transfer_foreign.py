"""Published encoders (Hu et al. 2020, MolCLR): strict loading, layer maths, featurization, fine-tuning.

The Hu GCN checkpoint ships as a fixture; the GraphSAGE / GAT / MolCLR checkpoints are tested when
MOLGNN_FOREIGN_CHECKPOINTS (default: /work/shared/checkpoints if present) holds them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from molgnn.checkpoint import safe_load
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.foreign import hu2020_spec, molclr_spec
from molgnn.featurize.graph import smiles_to_graph
from molgnn.featurize.spec import default_spec
from molgnn.nn import ENCODER_FAMILIES
from molgnn.nn.hu2020 import HuGATConv, HuGCNConv, HuSAGEConv
from molgnn.nn.molclr import MolCLRGCNConv
from molgnn.transfer import load_foreign_encoder, load_state_dict_encoder

ROOT = Path(__file__).resolve().parents[1]
GCN_FIXTURE = Path(__file__).parent / "fixtures" / "hu2020" / "gcn_contextpred.pth"
SHIPPED = ROOT / "data" / "pretrained"  # published weights shipped with molgnn (data/pretrained/README.md)
FOREIGN = [
    ("hu2020_gcn", GCN_FIXTURE),
    ("hu2020_sage", SHIPPED / "hu2020" / "graphsage_contextpred.pth"),
    ("hu2020_gat", SHIPPED / "hu2020" / "gat_contextpred.pth"),
    ("molclr_gcn", SHIPPED / "molclr" / "pretrained_gcn_model.pth"),
]
TINY = ["~callbacks.rich_progress_bar", "~callbacks.lr_monitor", "logger=none", "head.hidden_dim=16"]


def _batch(smiles: list[str], spec) -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, spec) for s in smiles])


@pytest.mark.parametrize("family,path", FOREIGN, ids=[f for f, _ in FOREIGN])
def test_published_checkpoint_loads_every_tensor(family, path):
    encoder = load_foreign_encoder(family, path)
    state = safe_load(path)
    own = encoder.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], state[k]) for k in state)
    encoder.eval()
    h = encoder(_batch(["CCO", "c1ccccc1O", "C/C=C/[C@H](N)C(=O)O"], encoder.spec))
    assert h.shape == (3, encoder.out_dim) and torch.isfinite(h).all()


def test_specs_match_their_featurization():
    """Z-1 and chirality columns; bond type and direction; unknowns go to the mask rows."""
    g = smiles_to_graph("F/C=C/[C@H](Cl)Br.[Na+].*", hu2020_spec())
    assert g.x[:, 0].tolist() == [8, 5, 5, 5, 16, 34, 10, 119]  # F C C C Cl Br Na, '*' (Z=0) -> mask
    assert g.x[:, 1].tolist() == [0, 0, 0, 2, 0, 0, 0, 0]  # [C@H] = CCW
    assert g.edge_attr[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert g.edge_attr[:, 1].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 0, 0]  # F/C and C/C: ENDUPRIGHT
    assert smiles_to_graph("*C", molclr_spec()).x[0, 0] == 118


def test_bn_statistics_confirm_featurization_and_layers():
    """The checkpoint's batch-norm running statistics were collected on real molecules: with the right
    featurization and layer maths, the pre-norm activations on bundled molecules standardize to ~N(0, 1);
    an off-by-one atom index (Z instead of Z-1) visibly does not."""
    encoder = load_foreign_encoder("hu2020_gcn", GCN_FIXTURE).eval()
    smiles = pd.read_csv(ROOT / "data/moleculenet/lipophilicity.csv").smiles.tolist()[:150]
    batch = _batch(smiles, encoder.spec)

    def z_scores(b):
        pre = []
        hooks = [bn.register_forward_hook(lambda m, i, o: pre.append(i[0])) for bn in encoder.batch_norms]
        with torch.no_grad():
            encoder.node_embeddings(b)
        for hook in hooks:
            hook.remove()
        return [
            ((x - bn.running_mean) / (bn.running_var + 1e-5).sqrt())
            for x, bn in zip(pre, encoder.batch_norms)
        ]

    good = z_scores(batch)
    for z in good[:4]:
        assert z.mean(0).abs().mean() < 0.3 and 0.6 < z.std(0).mean() < 1.2
    shifted = batch.clone()
    shifted.x[:, 0] = (shifted.x[:, 0] + 1).clamp(max=119)
    bad = z_scores(shifted)
    assert sum(z.mean(0).abs().mean() for z in bad[:4]) > 3 * sum(z.mean(0).abs().mean() for z in good[:4])


def _graph():
    """Ethanol-like 4-atom graph with both edge directions and varied bond features."""
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    edge_attr = torch.tensor([[0, 0], [0, 0], [1, 2], [1, 2], [3, 1], [3, 1]])
    return edge_index, edge_attr


def _loops(edge_index, edge_attr, n):
    """Reference edge list with self-loops (bond type 4, direction 0), as plain Python tuples."""
    edges = [(int(s), int(d), int(a), int(b)) for (s, d), (a, b) in zip(edge_index.t(), edge_attr)]
    return edges + [(i, i, 4, 0) for i in range(n)]


@torch.no_grad()
def test_layers_match_a_dense_reference():
    """Each conv against a loop-by-loop implementation of the formulas in their code (README maths)."""
    torch.manual_seed(0)
    n, d = 4, 8
    x = torch.randn(n, d)
    edge_index, edge_attr = _graph()
    edges = _loops(edge_index, edge_attr, n)

    gcn = HuGCNConv(d)
    deg = [sum(1 for _, t, _, _ in edges if t == i) for i in range(n)]  # degree counted with self-loops
    ref = torch.zeros(n, d)
    for s, t, a, b in edges:
        e = gcn.edge_embedding1.weight[a] + gcn.edge_embedding2.weight[b]
        ref[t] += (gcn.linear(x[s]) + e) / (deg[s] * deg[t]) ** 0.5
    assert torch.allclose(gcn(x, edge_index, edge_attr), ref, atol=1e-5)

    sage = HuSAGEConv(d)
    ref = torch.zeros(n, d)
    for s, t, a, b in edges:
        ref[t] += (sage.linear(x[s]) + sage.edge_embedding1.weight[a] + sage.edge_embedding2.weight[b]) / deg[
            t
        ]
    assert torch.allclose(
        sage(x, edge_index, edge_attr), torch.nn.functional.normalize(ref, dim=-1), atol=1e-5
    )

    gat = HuGATConv(d)
    wx = gat.weight_linear(x).view(n, 2, d)
    scores = {}
    for k, (s, t, a, b) in enumerate(edges):
        z = wx[s] + (gat.edge_embedding1.weight[a] + gat.edge_embedding2.weight[b]).view(2, d)
        scores[k] = (z, torch.nn.functional.leaky_relu((torch.cat([wx[t], z], -1) * gat.att[0]).sum(-1), 0.2))
    ref = torch.zeros(n, 2, d)
    for k, (_, t, _, _) in enumerate(edges):
        denom = sum(torch.exp(scores[j][1]) for j, e in enumerate(edges) if e[1] == t)
        ref[t] += scores[k][0] * (torch.exp(scores[k][1]) / denom).unsqueeze(-1)
    assert torch.allclose(gat(x, edge_index, edge_attr), ref.mean(1) + gat.bias, atol=1e-5)

    molclr = MolCLRGCNConv(d)
    ref = torch.zeros(n, d)
    for s, t, a, b in edges:  # plain sum, scalar edge embeddings, x @ W (their code)
        ref[t] += x[s] @ molclr.weight + molclr.edge_embedding1.weight[a] + molclr.edge_embedding2.weight[b]
    assert torch.allclose(molclr(x, edge_index, edge_attr), ref + molclr.bias, atol=1e-5)


def test_foreign_family_refuses_another_spec():
    with pytest.raises(MolgnnError, match=r"needs the 'hu2020' featurizer spec; .*atomic_num"):
        ENCODER_FAMILIES["hu2020_gcn"](spec=default_spec())


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = safe_load(GCN_FIXTURE)
    state.pop("gnns.3.linear.bias")
    state["gnns.9.linear.weight"] = torch.zeros(3)
    state["x_embedding2.weight"] = torch.zeros(4, 300)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        load_foreign_encoder("hu2020_gcn", tmp_path / "broken.pth")
    msg = str(err.value)
    assert (
        "missing keys (1): gnns.3.linear.bias" in msg and "unexpected keys (1): gnns.9.linear.weight" in msg
    )
    assert "x_embedding2.weight: file (4, 300) vs model (3, 300)" in msg
    with pytest.raises(CheckpointError, match="missing keys"):  # a different architecture is caught too
        load_foreign_encoder("hu2020_gcn", GCN_FIXTURE, num_layers=6)


def test_state_dict_encoder_with_prefix_and_config_args(tmp_path):
    """encoder=state_dict: a fine-tuned Hu et al. model keeps the GNN under ``gnn.``; the head is dropped."""
    state = {f"gnn.{k}": v for k, v in safe_load(GCN_FIXTURE).items()}
    state["graph_pred_linear.weight"] = torch.zeros(1, 300)
    torch.save(state, tmp_path / "finetuned.pth")
    encoder = load_state_dict_encoder("hu2020_gcn", tmp_path / "finetuned.pth", spec=None, prefix="gnn")
    assert torch.equal(encoder.x_embedding1.weight, safe_load(GCN_FIXTURE)["x_embedding1.weight"])
    with pytest.raises(CheckpointError, match=r"missing keys .* set encoder.prefix=gnn\)"):
        load_state_dict_encoder("hu2020_gcn", tmp_path / "finetuned.pth", spec=hu2020_spec())
    with pytest.raises(CheckpointError, match="no tensors under prefix 'encoder'"):
        load_state_dict_encoder("hu2020_gcn", tmp_path / "finetuned.pth", prefix="encoder")


def test_state_dict_config_composes_and_loads(compose, tmp_path):
    from hydra.utils import instantiate

    gine = instantiate(
        compose("train", ["encoder=gine", "encoder.hidden_dim=32", "encoder.num_layers=2"]).encoder
    )
    torch.save(gine.state_dict(), tmp_path / "gine.pt")
    cfg = compose(
        "train",
        [
            "encoder=state_dict",
            "encoder.family=gine",
            f"encoder.path={tmp_path / 'gine.pt'}",
            "+encoder.args.hidden_dim=32",
            "+encoder.args.num_layers=2",
        ],
    )
    loaded = instantiate(cfg.encoder)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in gine.state_dict().items())
    cfg = compose(
        "train", ["encoder=state_dict", "encoder.family=gine", f"encoder.path={tmp_path / 'gine.pt'}"]
    )
    # class default width 300 != 32 in the file (Hydra wraps the CheckpointError in an InstantiationException)
    with pytest.raises(Exception, match="shape mismatches .*file \\(101, 32\\) vs model \\(101, 300\\)"):
        instantiate(cfg.encoder)


def test_missing_published_file_says_where_to_get_it(tmp_path):
    with pytest.raises(CheckpointError, match="not found .*github.com/snap-stanford/pretrain-gnns"):
        load_foreign_encoder("hu2020_gat", tmp_path / "gat_contextpred.pth")


@pytest.mark.slow
@pytest.mark.parametrize("family,path", FOREIGN, ids=[f for f, _ in FOREIGN])
def test_published_encoder_fine_tunes_one_epoch(compose, fixtures, tmp_path, family, path):
    from molgnn.cli.train import train

    cfg = compose(
        "train",
        [
            f"encoder={family}",
            f"encoder.path={path}",
            "data=csv",
            f"data.path={fixtures / 'esol_small.csv'}",
            "data.target_cols=[logS]",
            "split=random",
            "trainer.max_epochs=1",
            *TINY,
        ],
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["epochs"] == 1 and metrics["test/rmse"] is not None
    blob = safe_load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert blob["molgnn"]["encoder"]["family"] == family and blob["molgnn"]["spec"]["name"] in (
        "hu2020",
        "molclr",
    )
    before = safe_load(path)
    moved = [
        k
        for k, v in before.items()
        if v.is_floating_point()
        and not k.startswith("out_lin")
        and not torch.equal(blob["state_dict"][f"encoder.{k}"], v)
    ]
    assert moved  # fine-tuning updated the pretrained weights


@pytest.mark.slow
def test_same_architecture_from_scratch(compose, fixtures, tmp_path):
    from molgnn.cli.train import train

    cfg = compose(
        "train",
        [
            "encoder=hu2020_gcn",
            "encoder.path=null",
            "encoder.hidden_dim=32",
            "data=csv",
            f"data.path={fixtures / 'esol_small.csv'}",
            "data.target_cols=[logS]",
            "split=random",
            "trainer.max_epochs=1",
            *TINY,
        ],
    )
    train(cfg, tmp_path / "run")
    assert (
        safe_load(tmp_path / "run" / "checkpoints" / "last.ckpt")["molgnn"]["encoder"]["args"]["hidden_dim"]
        == 32
    )
