"""Depth switches of both encoder families: each builds, trains a few steps, pretrains, saves and reloads
bit-identically; known-answer checks of DropEdge, the gate, PairNorm and per-step D-MPNN weights. The
oversmoothing diagnostics are tested in test_diagnose.py."""

import pytest
import torch
from torch_geometric.data import Batch

from conftest import FIXTURES
from molgnn.checkpoint import export_encoder, load_encoder
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.nn.depth import drop_bonds
from molgnn.tasks.pretrain import AttributeMasking, PretrainContext

SPEC = default_spec()
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C", "OC(=O)C1CCCCC1N", "CCN(CC)CC"]
OPTIONS = [
    dict(),
    dict(residual=True),
    dict(jk="cat"),
    dict(jk="max"),
    dict(virtual_node=True),
    dict(pair_norm=True),
    dict(pair_norm="last"),
    dict(drop_edge=0.2),
    dict(global_attention=4),
    dict(residual=True, virtual_node=True, jk="max"),
    dict(gate=True, residual=False),
]


def _batch(smiles=SMILES) -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, SPEC) for s in smiles])


def test_drop_bonds_keeps_both_directions_together():
    torch.manual_seed(0)
    b = _batch()
    edge_index, edge_attr = drop_bonds(b.edge_index, b.edge_attr, 0.5, training=True)
    assert 0 < edge_index.size(1) < b.edge_index.size(1) and edge_index.size(1) % 2 == 0
    assert torch.equal(edge_index[0, 0::2], edge_index[1, 1::2])  # still interleaved: reverse of e is e ^ 1
    assert edge_attr.size(0) == edge_index.size(1)
    assert drop_bonds(b.edge_index, b.edge_attr, 0.5, training=False)[0] is b.edge_index


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()) or "plain"
)
@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_depth_option_trains_pretrains_and_reloads_bit_identically(family, options, tmp_path):
    torch.manual_seed(0)
    _train_export_reload(family(SPEC, hidden_dim=16, num_layers=6, **options), tmp_path)


def _train_export_reload(encoder, tmp_path) -> None:
    """A few supervised and pretraining steps, then export and reload: the same args, the same outputs."""
    batch, y = _batch(), torch.randn(len(SMILES), 1)
    head = torch.nn.Linear(encoder.out_dim, 1)
    mask = AttributeMasking(PretrainContext(encoder.out_dim, SPEC, 0))
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters(), *mask.parameters()], lr=1e-2)
    for _ in range(3):
        loss = (head(encoder(batch)) - y).pow(2).mean() + mask(encoder, batch)[0]
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    states = encoder.layer_states(batch)
    depth, width = encoder.args["num_layers"], encoder.args["hidden_dim"]
    assert len(states) == depth + 1 and all(s.shape == (batch.num_nodes, width) for s in states)
    encoder.eval()
    export_encoder(encoder, tmp_path / "deep.pt")
    loaded = load_encoder(tmp_path / "deep.pt", expect_spec=SPEC).eval()
    assert loaded.args == encoder.args
    assert torch.equal(loaded(batch), encoder(batch))


def test_dmpnn_unshared_weights_one_matrix_per_step(tmp_path):
    """shared_weights=false: num_layers - 1 message matrices; all set to the shared W_h, the network is the
    shared one; trained, they drift apart and the encoder still saves and reloads bit-identically."""
    torch.manual_seed(0)
    shared = DMPNNEncoder(SPEC, hidden_dim=12, num_layers=5).eval()
    unshared = DMPNNEncoder(SPEC, hidden_dim=12, num_layers=5, shared_weights=False).eval()
    assert len(unshared.message_steps) == 4 and "message.weight" not in unshared.state_dict()
    state = {k: v for k, v in shared.state_dict().items() if k != "message.weight"}
    state |= {f"message_steps.{i}.weight": shared.message.weight for i in range(4)}
    unshared.load_state_dict(state)
    batch = _batch()
    with torch.no_grad():
        assert torch.allclose(unshared(batch), shared(batch), atol=1e-6)
        unshared.message_steps[2].weight.mul_(2.0)  # one step changed: the outputs change
        assert not torch.allclose(unshared(batch), shared(batch), atol=1e-4)
    _train_export_reload(unshared.train(), tmp_path)
    weights = [m.weight for m in unshared.message_steps]
    assert not torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_global_attention_reaches_atoms_no_bond_connects(family):
    """In 'CC.CO' vs 'CC.CN' the ethane carbons share no path with the other fragment: only attention lets them see
    it, so their embeddings change with it only when global_attention is on."""
    torch.manual_seed(0)
    for heads, expect_change in [(0, False), (2, True)]:
        encoder = family(SPEC, hidden_dim=8, num_layers=2, global_attention=heads).eval()
        with torch.no_grad():
            a, b = (encoder.node_embeddings(_batch([s]))[:2] for s in ("CC.CO", "CC.CN"))
        assert (not torch.allclose(a, b)) == expect_change


def test_switches_off_build_the_original_parameters():
    """Old checkpoints keep loading: the defaults add no parameter."""
    assert not any(
        k.split(".")[0] in ("virtual_node", "pair_norm", "attention", "gate", "message_steps")
        for k in DMPNNEncoder(SPEC).state_dict()
    )
    assert DMPNNEncoder(SPEC, hidden_dim=8, num_layers=4, jk="cat").output_msg.in_features == 32
    with pytest.raises(ValueError, match="encoder.jk"):
        DMPNNEncoder(SPEC, jk="mean")
    with pytest.raises(ValueError, match="encoder.drop_edge"):
        GINEEncoder(SPEC, drop_edge=1.0)
    with pytest.raises(ValueError, match="encoder.global_attention"):
        DMPNNEncoder(SPEC, hidden_dim=300, global_attention=7)
    with pytest.raises(ValueError, match="encoder.residual=false"):
        GINEEncoder(SPEC, gate=True)  # GINE's residual default is on: the gate would replace it silently


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_gate_open_is_the_plain_update_and_gate_shut_carries_the_state(family):
    """z = 1 everywhere gives the ungated network's outputs; z = 0 leaves every state as it came in."""
    torch.manual_seed(0)
    plain = family(SPEC, hidden_dim=20, num_layers=4, residual=False).eval()
    gated = family(SPEC, hidden_dim=20, num_layers=4, residual=False, gate=True).eval()
    gated.load_state_dict(plain.state_dict(), strict=False)  # same weights, plus the gates
    batch = _batch()
    with torch.no_grad():
        for gate in gated.gate:
            gate.linear.weight.zero_()
            gate.linear.bias.fill_(100.0)
        assert torch.allclose(gated(batch), plain(batch), atol=1e-6)
        for gate in gated.gate:
            gate.linear.bias.fill_(-100.0)
        states = gated.layer_states(batch)
    # the atom view before the first step (GINE: the input embedding; D-MPNN: the sums of relu(h0)) throughout
    assert all(torch.equal(s, states[0]) for s in states[1:-1])


def test_every_encoder_family_keeps_the_encoder_contract():
    from molgnn.nn import ENCODER_FAMILIES, Encoder

    for family, cls in ENCODER_FAMILIES.items():
        assert issubclass(cls, Encoder) and cls.family == family
        for member in ("out_dim", "layers", "node_embeddings", "embed"):
            assert getattr(cls, member) is not getattr(Encoder, member), f"{family} does not define {member}"


@pytest.mark.slow
def test_deep_encoder_pretrains_and_exports(compose, tmp_path):
    from molgnn.cli.pretrain import pretrain

    overrides = [
        f"data.path={FIXTURES / 'pretrain_200.csv'}",
        "trainer.max_steps=3",
        "encoder.hidden_dim=16",
        "encoder.num_layers=8",
        "encoder.virtual_node=true",
        "encoder.residual=true",
        "encoder.jk=max",
        "encoder.drop_edge=0.1",
        "data.batch_size=32",
        "data.descriptor_names=[MolWt,TPSA]",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    pretrain(compose("pretrain", overrides), tmp_path / "pre")
    encoder = load_encoder(tmp_path / "pre" / "encoder.pt", expect_spec=SPEC)
    assert encoder.args["num_layers"] == 8 and encoder.args["virtual_node"] and encoder.args["jk"] == "max"
    assert len(encoder.layer_states(_batch())) == 9


def test_pair_norm_leaves_molecules_distinct_under_a_mean_readout():
    torch.manual_seed(0)
    encoder = GINEEncoder(
        SPEC, hidden_dim=16, num_layers=3, residual=False, pair_norm=True, readout="mean"
    ).eval()
    h = encoder(_batch())
    assert h.std(dim=0).max() > 1e-3  # not one vector (zero) for every molecule


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_pair_norm_last_normalizes_only_the_last_normalized_step(family):
    """``pair_norm=last`` leaves every state before the last normalized step as the plain encoder's (D-MPNN:
    its last step; GINE: the layer before its last; layer_states index 4 of 6 for both at 5 layers) and
    changes that step's; ``true`` changes the first step already. On the D-MPNN the normalized bond states of
    a molecule sum to zero (PairNorm centres them)."""
    batch = _batch()

    def states(pair_norm) -> list[torch.Tensor]:
        torch.manual_seed(0)
        enc = family(SPEC, hidden_dim=16, num_layers=5, pair_norm=pair_norm, residual=False).eval()
        with torch.no_grad():
            return enc.layer_states(batch)

    every, last, off = states(True), states("last"), states(False)
    for i in range(4):
        torch.testing.assert_close(last[i], off[i])
    assert not torch.allclose(last[4], off[4]) and not torch.allclose(every[1], off[1])
    if family is DMPNNEncoder:
        per_molecule = torch.zeros(batch.num_graphs, 16).index_add(0, batch.batch, last[4])
        assert per_molecule.abs().max() < 1e-4
    with pytest.raises(ValueError, match="encoder.pair_norm"):
        family(SPEC, pair_norm="sometimes")


def _plain_dmpnn(enc: DMPNNEncoder, batch: Batch) -> torch.Tensor:
    """The D-MPNN of the encoder's docstring written out at its own width (no compute padding)."""
    (src, dst), n, args = batch.edge_index, batch.x.size(0), enc.args
    h0 = enc.input_atom(batch.x)[src] + enc.input_bond(batch.edge_attr) + enc.input_bias
    states = [torch.relu(h0)]
    for _ in range(args["num_layers"] - 1):
        h = states[-1]
        incoming = torch.zeros(n, h.size(1)).index_add(0, dst, h)
        new = torch.relu(h0 + (incoming[src] - h[torch.arange(h.size(0)) ^ 1]) @ enc.message.weight.T)
        states.append(h + new if args["residual"] else new)
    sums = [torch.zeros(n, s.size(1)).index_add(0, dst, s) for s in states]
    msg = {"last": sums[-1], "cat": torch.cat(sums, 1), "max": torch.stack(sums).max(0).values}[args["jk"]]
    atoms = torch.relu(enc.output_atom(batch.x) + enc.output_msg(msg))
    return torch.zeros(batch.num_graphs, atoms.size(1)).index_add(0, batch.batch, atoms) * 0.01


@pytest.mark.parametrize("options", [dict(), dict(jk="cat", residual=True), dict(jk="max", num_layers=4)])
@pytest.mark.parametrize("width", [300, 20])
def test_dmpnn_padded_compute_width_gives_the_plain_networks_outputs(options, width):
    """States are computed 304 (32) wide for speed; the embeddings are the 300 (20) wide network's."""
    torch.manual_seed(0)
    enc = DMPNNEncoder(SPEC, hidden_dim=width, **options).eval()
    batch = _batch()
    with torch.no_grad():
        got, want = enc.embed(batch), _plain_dmpnn(enc, batch)
        states = enc.layer_states(batch)
    assert got.shape == want.shape == (len(SMILES), width)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(s.shape == (batch.x.size(0), width) for s in states)
