"""MiniMol v1 (Kläser et al. 2024, arXiv 2404.14986; MIT): graphium's FullGraphMultiTaskNetwork up to the
fingerprint, re-written with PyG's ``GINEConv``; parameter names are those of the wheel's ``state_dict.pth``
(under ``model.``), so its 302 fingerprint-path tensors load strictly (the task heads are not part of it).

Facts of graphium 2.4.7 reproduced here (``nn/base_layers.py``, ``nn/encoders/*``, ``nn/pyg_layers/*``,
``nn/architectures/global_architectures.py``), eval mode (dropout off):

- a fully connected layer is linear -> LayerNorm (if any) -> dropout -> activation;
- Laplacian encoder ("la_pos", DeepSet): per node and eigen slot the pair (eigenvalue, eigenvector entry)
  (graphium names them the other way round, but feeds this order), linear 2->64, 2 x (64->64, ReLU after the
  first only), sum over the 8 slots (padded slots included), linear 64->32;
- random-walk encoder ("rw_pos"): LayerNorm(16), 16->64 and 64->32, each LayerNorm + ReLU. The encoder-level
  ``first_normalization`` is built but never applied (only its copy inside the MLP is);
- node input: cat(la + rw, 85 atom features) -> 117->256 (LN, ReLU) -> 128 (LN); edges 13->128 (LN, ReLU)
  -> 168 (LN);
- 16 GINE layers 128 -> 336 x 15 -> 512 (nn: Linear-LN-GELU-Linear; eps a fixed buffer), each followed by
  LayerNorm and exact GELU, the last one too; after layers 1..14 a residual h = h + h_prev, where h_prev is
  the previous layer's output before its virtual node was added;
- virtual node after layers 0..14: vn = vn + FC(vn + logsum_pool(h)) (FC: linear, LN, GELU; logsum = mean x
  log(number of atoms)), h = h + Linear(vn[batch] / 2) (a muP readout: input divided by the width multiplier
  336 / 168 from ``base_shape.yaml``);
- fingerprint: global max pool of layer 15's node outputs (512).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch_geometric.nn import GINEConv, global_max_pool
from torch_geometric.utils import scatter

from molgnn.errors import CheckpointError
from molgnn.featurize.minimol import decode_float16, minimol_spec
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.hu2020 import check_spec
from molgnn.nn.encoder import Encoder

VN_WIDTH_MULT = 336 / 168  # muP: absolute / base width of the virtual-node projection (base_shape.yaml)


class FC(nn.Module):
    """graphium ``FCLayer``: ``linear`` -> ``normalization`` (LayerNorm or none) -> dropout -> activation."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        act: type[nn.Module] | None = None,
        norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.normalization = nn.LayerNorm(out_dim) if norm else None
        self.dropout = nn.Dropout(dropout)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.linear(h)
        if self.normalization is not None:
            h = self.normalization(h)
        return self.act(self.dropout(h))


class MLP(nn.Module):
    """graphium ``MLP``: optional ``first_normalization``, then ``fully_connected`` (a Sequential of FC)."""

    def __init__(self, layers: list[FC], first_norm: int | None = None):
        super().__init__()
        self.first_normalization = nn.LayerNorm(first_norm) if first_norm else None
        self.fully_connected = nn.Sequential(*layers)
        self.in_features = layers[0].linear.in_features  # read by PyG GINEConv for its edge projection

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.first_normalization is not None:
            h = self.first_normalization(h)
        return self.fully_connected(h)


class LaplacianDeepSet(nn.Module):
    """(eigvec float [N, K], eigval float [N, K]) -> float [N, 32]."""

    def __init__(self, hidden: int = 64, out: int = 32, dropout: float = 0.0):
        super().__init__()
        self.linear_in = FC(2, hidden)
        self.pe_encoder = MLP([FC(hidden, hidden, nn.ReLU, dropout=dropout), FC(hidden, hidden)])
        self.post_mlp = MLP([FC(hidden, out)])

    def forward(self, eigvec: torch.Tensor, eigval: torch.Tensor) -> torch.Tensor:
        pairs = torch.stack([eigval, eigvec], dim=-1)  # [N, K, 2]
        pairs = torch.nan_to_num(pairs, nan=0.0)
        return self.post_mlp(self.pe_encoder(self.linear_in(pairs)).sum(dim=1))


class RandomWalkMLP(nn.Module):
    """rw return probabilities float [N, 16] -> float [N, 32]."""

    def __init__(self, steps: int = 16, hidden: int = 64, out: int = 32, dropout: float = 0.0):
        super().__init__()
        self.first_normalization = nn.LayerNorm(steps)  # in the checkpoint, unused by graphium's forward
        self.pe_encoder = MLP(
            [FC(steps, hidden, nn.ReLU, True, dropout), FC(hidden, out, nn.ReLU, True, dropout)],
            first_norm=steps,
        )

    def forward(self, rw: torch.Tensor) -> torch.Tensor:
        return self.pe_encoder(rw)


class PEEncoders(nn.Module):
    """``encoder_manager``: the two positional encoders, summed (graphium's ``pool: sum``)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.pe_encoders = nn.ModuleDict(
            {"la_pos": LaplacianDeepSet(dropout=dropout), "rw_pos": RandomWalkMLP(dropout=dropout)}
        )

    def forward(self, eigvec: torch.Tensor, eigval: torch.Tensor, rw: torch.Tensor) -> torch.Tensor:
        return self.pe_encoders["la_pos"](eigvec, eigval) + self.pe_encoders["rw_pos"](rw)


class Stack(nn.Module):
    """graphium ``FeedForwardNN`` without residuals: ``layers`` applied in order."""

    def __init__(self, layers: list[FC]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


class GINELayer(nn.Module):
    """graphium ``GINEConvPyg``: PyG GINEConv (nn = Linear-LN-GELU-Linear) -> ``norm_layer`` -> GELU."""

    def __init__(self, in_dim: int, out_dim: int, edge_dim: int, dropout: float = 0.0):
        super().__init__()
        gin_nn = MLP([FC(in_dim, in_dim, nn.GELU, True, dropout), FC(in_dim, out_dim)])
        self.model = GINEConv(gin_nn, train_eps=False, edge_dim=edge_dim)
        self.norm_layer = nn.LayerNorm(out_dim)
        self.act, self.dropout = nn.GELU(), nn.Dropout(dropout)

    def forward(self, h, edge_index, edge_feat) -> torch.Tensor:
        """h float [N, in_dim], edge_feat float [E, edge_dim] -> float [N, out_dim]."""
        return self.dropout(self.act(self.norm_layer(self.model(h, edge_index, edge_feat))))


class VirtualNode(nn.Module):
    """graphium ``VirtualNodePyg`` (logsum pooling, residual between virtual nodes, muP projection)."""

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc_layer = FC(dim, dim, nn.GELU, True, dropout)
        self.node_projection = nn.Linear(dim, dim)

    def forward(self, h, vn, batch, num_graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """h float [N, d], vn float [B, d] -> (h + projection of the new vn per node, new vn [B, d])."""
        count = scatter(torch.ones_like(h[:, 0]), batch, 0, dim_size=num_graphs, reduce="sum")
        pool = scatter(h, batch, 0, dim_size=num_graphs, reduce="mean") * torch.log(count).unsqueeze(-1)
        vn = vn + self.fc_layer(vn + pool)
        return h + self.node_projection(vn[batch] / VN_WIDTH_MULT), vn


class GNN(nn.Module):
    """``gnn``: 16 GINE ``layers`` and 15 ``virtual_node_layers``."""

    def __init__(self, dims: list[int], edge_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(GINELayer(a, b, edge_dim, dropout) for a, b in zip(dims[:-1], dims[1:]))
        self.virtual_node_layers = nn.ModuleList(VirtualNode(d, dropout) for d in dims[1:-1])

    def forward(self, h, edge_index, edge_feat, batch, num_graphs) -> list[torch.Tensor]:
        """-> each layer's node output (graphium's ``gnn_readout_i``), float [N, dims[i + 1]]."""
        vn = h.new_zeros(num_graphs, self.layers[0].norm_layer.normalized_shape[0])
        h_prev, outs = None, []
        for i, layer in enumerate(self.layers):
            h = layer(h, edge_index, edge_feat)
            if i < len(self.virtual_node_layers):
                h = h if i == 0 else h + h_prev
                h_prev = h
                h, vn = self.virtual_node_layers[i](h, vn, batch, num_graphs)
            outs.append(h)
        return outs


def installed_weights() -> str:
    """Path of ``state_dict.pth`` in an installed ``minimol`` package (``pip install --no-deps minimol==1.3.5``),
    found without importing it (its ``__init__`` imports graphium)."""
    found = importlib.util.find_spec("minimol")
    if found is None or not found.submodule_search_locations:
        raise CheckpointError(
            "the MiniMol weights come with the minimol package: pip install --no-deps "
            "minimol==1.3.5 (graphium is not needed), or set encoder.path=.../state_dict.pth"
        )
    path = Path(next(iter(found.submodule_search_locations))) / "ckpts" / "minimol_v1" / "state_dict.pth"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing from the installed minimol package (reinstall minimol==1.3.5)"
        )
    return str(path)


def fingerprint_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MiniMol's ``state_dict.pth`` -> the tensors of the fingerprint path: ``model.`` stripped, the task
    heads (``model.task_heads.*``: graph output MLP and the five pretraining heads) left out."""
    return {
        k[len("model.") :]: v
        for k, v in state.items()
        if k.startswith("model.") and not k.startswith("model.task_heads.")
    }


class MinimolEncoder(Encoder):
    """MiniMol v1's GNN: PyG Batch (spec ``minimol_spec()``: x long [N, 41], edge_attr long [E, 3]) ->
    fingerprint float [B, 512] (``embed``/``forward``); ``node_embeddings`` -> float [N, 512].

    ``dropout`` applies where graphium trained with dropout (0.02 there; 0 = its inference network).
    """

    family = "minimol"
    default_spec = staticmethod(minimol_spec)
    source = "https://pypi.org/project/minimol/1.3.5/ (minimol/ckpts/minimol_v1/state_dict.pth)"

    installed_weights = staticmethod(installed_weights)
    published_state = staticmethod(fingerprint_state)

    def __init__(self, spec: FeaturizerSpec | None = None, dropout: float = 0.0):
        super().__init__()
        spec = spec if spec is not None else minimol_spec()
        check_spec(spec, minimol_spec(), self.family)
        self.spec, self.args = spec, dict(dropout=dropout)
        self.encoder_manager = PEEncoders(dropout)
        self.pre_nn = Stack([FC(117, 256, nn.ReLU, True, dropout), FC(256, 128, None, True)])
        self.pre_nn_edges = Stack([FC(13, 128, nn.ReLU, True, dropout), FC(128, 168, None, True)])
        self.gnn = GNN([128] + [336] * 15 + [512], edge_dim=168, dropout=dropout)
        self._onehots = [f.size for f in spec.atom_features[5:9]] + [f.size for f in spec.bond_features[:2]]

    @property
    def out_dim(self) -> int:
        return 512

    @property
    def layers(self) -> list[nn.Module]:
        """GINE layers in order, each with the virtual node that follows it (for freezing)."""
        vns = list(self.gnn.virtual_node_layers)
        return [nn.ModuleList([layer, *vns[i : i + 1]]) for i, layer in enumerate(self.gnn.layers)]

    @property
    def embeddings(self) -> list[nn.Module]:
        """The input networks: positional encoders and the node / edge MLPs."""
        return [self.encoder_manager, self.pre_nn, self.pre_nn_edges]

    def decode(self, batch) -> dict[str, torch.Tensor]:
        """Long columns -> graphium's float inputs: feat [N, 85], edge_feat [E, 13], eigvec / eigval [N, 8],
        rw [N, 16]."""
        x, ea, (a1, a2, a3, a4, b1, b2) = batch.x, batch.edge_attr, self._onehots
        hot = torch.nn.functional.one_hot
        feat = torch.cat(
            [
                decode_float16(x[:, :5]),
                *(hot(x[:, 5 + i], n).float() for i, n in enumerate((a1, a2, a3, a4))),
            ],
            dim=1,
        )
        edge_feat = torch.cat(
            [hot(ea[:, 0], b1).float(), hot(ea[:, 1], b2).float(), decode_float16(ea[:, 2:3])], 1
        )
        pe = decode_float16(x[:, 9:])
        return dict(feat=feat, edge_feat=edge_feat, eigvec=pe[:, :8], eigval=pe[:, 8:16], rw=pe[:, 16:])

    def node_layers(
        self, feat, edge_feat, eigvec, eigval, rw, edge_index, batch, num_graphs
    ) -> list[torch.Tensor]:
        """graphium's float inputs (``decode``) -> every GNN layer's node output (16 tensors)."""
        h = self.pre_nn(torch.cat([self.encoder_manager(eigvec, eigval, rw), feat], dim=-1))
        return self.gnn(h, edge_index, self.pre_nn_edges(edge_feat), batch, num_graphs)

    def node_embeddings(self, batch) -> torch.Tensor:
        return self.node_layers(
            **self.decode(batch), edge_index=batch.edge_index, batch=batch.batch, num_graphs=batch.num_graphs
        )[-1]

    def embed(self, batch) -> torch.Tensor:
        return global_max_pool(self.node_embeddings(batch), batch.batch, size=batch.num_graphs)
