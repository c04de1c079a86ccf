"""Readouts: several poolings concatenated (``sum+mean``), in both encoder families, saved and reloaded, and
put on a saved encoder without changing a weight (``encoder.readout`` on ``encoder=pretrained``)."""

import pytest
import torch
from hydra.utils import instantiate
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from molgnn.checkpoint import export_encoder, load_encoder
from molgnn.errors import CheckpointError
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.nn.readout import make_readout, readout_width

SPEC = default_spec()
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C", "OC(=O)C1CCCCC1N"]


def _batch() -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, SPEC) for s in SMILES])


def test_concatenated_poolings_on_known_node_states():
    """Two graphs, atoms [1, 3] and [5]: sum (scaled), mean and max side by side in the order asked."""
    h, index = torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([0, 0, 1])
    out = make_readout("sum+mean+max", 1, sum_scale=0.5)(h, index, dim_size=2)
    assert torch.equal(out, torch.tensor([[2.0, 2.0, 3.0], [2.5, 5.0, 5.0]]))
    assert readout_width("sum+mean+max") == 3 and readout_width("attention") == 1
    for bad in ("sum+median", "sum+sum", ""):
        with pytest.raises(ValueError, match="encoder.readout must be one of"):
            make_readout(bad, 4)


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_multi_readout_encoder_widens_embeddings_and_reloads_bit_identically(family, tmp_path):
    torch.manual_seed(0)
    encoder = family(SPEC, hidden_dim=8, num_layers=2, readout="sum+mean")
    batch = _batch()
    emb = encoder.eval()(batch)
    assert emb.shape == (len(SMILES), 16) and encoder.out_dim == 16
    nodes = encoder.node_embeddings(batch)
    scale = 0.01 if family is DMPNNEncoder else 1.0  # D-MPNN's readout_scale applies to the sum part only
    expected = torch.cat(
        [scatter(nodes, batch.batch, 0, reduce="sum") * scale, scatter(nodes, batch.batch, 0, reduce="mean")],
        1,
    )
    assert torch.allclose(emb, expected, atol=1e-6)
    reloaded = load_encoder(export_encoder(encoder, tmp_path / "enc.pt")).eval()
    assert reloaded.args["readout"] == "sum+mean" and torch.equal(reloaded(batch), emb)


def test_readout_override_on_a_saved_encoder_changes_no_weight(tmp_path):
    """The file's sum readout becomes sum+mean: the same tensors, the sum half equal to the file's embedding."""
    torch.manual_seed(0)
    path = export_encoder(DMPNNEncoder(SPEC, hidden_dim=8, num_layers=2), tmp_path / "enc.pt")
    plain, wide = load_encoder(path).eval(), load_encoder(path, readout="sum+mean").eval()
    for (k, a), (_, b) in zip(plain.state_dict().items(), wide.state_dict().items()):
        assert torch.equal(a, b), k
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(wide(batch)[:, :8], plain(batch))
        means = scatter(plain.node_embeddings(batch), batch.batch, 0, reduce="mean")
        assert torch.allclose(wide(batch)[:, 8:], means)


@pytest.mark.parametrize(
    "saved, asked, message",
    [
        (dict(), "attention", "attention pooling has weights"),
        (dict(readout="attention"), "sum", "attention pooling has weights"),
        (dict(batch_norm=True), "sum+mean", "saved weights read the graph embedding"),
        (dict(), "sum+median", "encoder.readout must be one of"),
    ],
)
def test_readout_overrides_that_would_change_weights_are_refused(saved, asked, message, tmp_path):
    path = export_encoder(DMPNNEncoder(SPEC, hidden_dim=8, num_layers=2, **saved), tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match=message) as err:
        load_encoder(path, readout=asked)
    assert "enc.pt" in str(err.value)


def test_pretrained_config_takes_a_readout(compose, tmp_path):
    """``encoder=pretrained encoder.readout=sum+mean+max``: the shipped encoder with three poolings, and a head
    sized from it (the width is never written in YAML)."""
    cfg = compose("train", ["encoder=pretrained", "encoder.readout=sum+mean+max"])
    encoder = instantiate(cfg.encoder)
    assert encoder.args["readout"] == "sum+mean+max" and encoder.out_dim == 3 * encoder.args["hidden_dim"]
