"""The GCN / GraphSAGE / GAT encoders of Hu et al. 2020 ("Strategies for Pre-training GNNs"), layer for layer.

Re-implemented on PyG ``MessagePassing`` from snap-stanford/pretrain-gnns ``chem/model.py`` (MIT) with the
same parameter names, so their published state dicts load with no missing or unexpected key:
``x_embedding1/2``, ``gnns.<l>.*``, ``batch_norms.<l>.*``. Every layer adds a self-loop to each node with
bond type 4 (their self-loop token) and direction 0. Their graphs hold every bond in both directions with
the same features, so aggregating at ``edge_index[1]`` (PyG 2) equals their ``edge_index[0]`` (PyG 1.0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import degree, softmax

from molgnn.errors import MolgnnError
from molgnn.featurize.foreign import hu2020_spec
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.readout import make_readout, readout_width
from molgnn.nn.encoder import Encoder

NUM_ATOM_TYPE, NUM_CHIRALITY = 120, 3  # their table sizes (mask tokens included)
NUM_BOND_TYPE, NUM_BOND_DIR = 6, 3
SELF_LOOP_BOND = 4


def add_self_loop_edges(
    edge_index: torch.Tensor, edge_attr: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one self-loop per node (after the real edges, as their code does) with features [4, 0, ...].

    edge_index long [2, E], edge_attr long [E, 2] -> long [2, E + N], long [E + N, 2].
    """
    loops = torch.arange(num_nodes, device=edge_index.device)
    loop_attr = torch.zeros(num_nodes, edge_attr.size(1), dtype=edge_attr.dtype, device=edge_attr.device)
    loop_attr[:, 0] = SELF_LOOP_BOND
    return torch.cat([edge_index, torch.stack([loops, loops])], dim=1), torch.cat([edge_attr, loop_attr])


class _BondEmbedding(MessagePassing):
    """Base for their layers: two bond embedding tables of width ``edge_dim`` summed per edge."""

    def __init__(self, edge_dim: int, aggr: str, num_bond_type: int = NUM_BOND_TYPE, **kwargs):
        super().__init__(aggr=aggr, **kwargs)
        self.edge_embedding1 = nn.Embedding(num_bond_type, edge_dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIR, edge_dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def with_self_loops(self, x, edge_index, edge_attr) -> tuple[torch.Tensor, torch.Tensor]:
        """-> edge_index long [2, E + N] and edge embeddings float [E + N, edge_dim]."""
        edge_index, edge_attr = add_self_loop_edges(edge_index, edge_attr, x.size(0))
        return edge_index, self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(edge_attr[:, 1])


class HuGCNConv(_BondEmbedding):
    """out_i = sum_{j in N(i) + i} d_i^-1/2 d_j^-1/2 (W x_j + b + e_ij), degrees counted with self-loops."""

    def __init__(self, emb_dim: int):
        super().__init__(emb_dim, aggr="add")
        self.linear = nn.Linear(emb_dim, emb_dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        edge_index, edge_emb = self.with_self_loops(x, edge_index, edge_attr)
        deg_inv_sqrt = degree(edge_index[1], x.size(0), dtype=x.dtype).pow(-0.5)
        deg_inv_sqrt[torch.isinf(deg_inv_sqrt)] = 0
        norm = deg_inv_sqrt[edge_index[0]] * deg_inv_sqrt[edge_index[1]]
        return self.propagate(edge_index, x=self.linear(x), edge_attr=edge_emb, norm=norm)

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        return norm.view(-1, 1) * (x_j + edge_attr)


class HuSAGEConv(_BondEmbedding):
    """out_i = normalize_L2(mean_{j in N(i) + i} (W x_j + b + e_ij))."""

    def __init__(self, emb_dim: int):
        super().__init__(emb_dim, aggr="mean")
        self.linear = nn.Linear(emb_dim, emb_dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        edge_index, edge_emb = self.with_self_loops(x, edge_index, edge_attr)
        return self.propagate(edge_index, x=self.linear(x), edge_attr=edge_emb)

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return x_j + edge_attr

    def update(self, aggr_out: torch.Tensor) -> torch.Tensor:
        return F.normalize(aggr_out, p=2, dim=-1)


class HuGATConv(_BondEmbedding):
    """Two-head attention: z_j = W x_j + b + e_ij per head; alpha_ij = softmax_j(leaky_relu(a . [W x_i + b, z_j]));
    out_i = mean over heads of sum_j alpha_ij z_j, plus bias."""

    def __init__(self, emb_dim: int, heads: int = 2, negative_slope: float = 0.2):
        super().__init__(heads * emb_dim, aggr="add", node_dim=0)
        self.emb_dim, self.heads, self.negative_slope = emb_dim, heads, negative_slope
        self.weight_linear = nn.Linear(emb_dim, heads * emb_dim)
        self.att = nn.Parameter(torch.empty(1, heads, 2 * emb_dim))
        self.bias = nn.Parameter(torch.zeros(emb_dim))
        nn.init.xavier_uniform_(self.att)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        edge_index, edge_emb = self.with_self_loops(x, edge_index, edge_attr)
        x = self.weight_linear(x).view(-1, self.heads, self.emb_dim)
        return self.propagate(edge_index, x=x, edge_attr=edge_emb)

    def message(self, x_i, x_j, edge_attr, index, ptr, size_i) -> torch.Tensor:
        x_j = x_j + edge_attr.view(-1, self.heads, self.emb_dim)
        alpha = (torch.cat([x_i, x_j], dim=-1) * self.att).sum(dim=-1)
        alpha = softmax(F.leaky_relu(alpha, self.negative_slope), index, ptr, size_i)
        return x_j * alpha.unsqueeze(-1)

    def update(self, aggr_out: torch.Tensor) -> torch.Tensor:
        return aggr_out.mean(dim=1) + self.bias


def check_spec(spec: FeaturizerSpec, expected: FeaturizerSpec, family: str) -> None:
    """A foreign encoder only reads the featurization it was trained on: any difference is an error."""
    expected.require_equal(
        spec,
        f"encoder family {family!r} needs the {expected.name!r} featurizer spec; "
        "differences (expected != given)",
        MolgnnError,
    )


class AtomTypeGNNStack:
    """The layer stack Hu et al. 2020 and MolCLR share: ``x_embedding1`` (atom type) + ``x_embedding2``
    (chirality), then ``gnns[i]`` -> ``batch_norms[i]`` -> ReLU (not after the last) -> ``dropout``.
    A mixin for ``nn.Module`` subclasses that define those attributes."""

    @property
    def layers(self) -> list[nn.Module]:
        """Message-passing layers in order, each with its batch norm (for freezing)."""
        return [nn.ModuleList([conv, norm]) for conv, norm in zip(self.gnns, self.batch_norms)]

    @property
    def embeddings(self) -> list[nn.Module]:
        """Input atom embeddings (frozen with any ``freeze_layers``)."""
        return [self.x_embedding1, self.x_embedding2]

    def node_embeddings(self, batch) -> torch.Tensor:
        h = self.x_embedding1(batch.x[:, 0]) + self.x_embedding2(batch.x[:, 1])
        last = len(self.gnns) - 1
        for i, (conv, norm) in enumerate(zip(self.gnns, self.batch_norms)):
            h = norm(conv(h, batch.edge_index, batch.edge_attr))
            h = self.dropout(h if i == last else torch.relu(h))
        return h


class Hu2020Encoder(AtomTypeGNNStack, Encoder):
    """Hu et al. 2020 GNN: x_embedding1(Z-1) + x_embedding2(chirality), ``num_layers`` x (conv -> batch norm
    -> ReLU except after the last -> dropout), then a graph readout (mean = their fine-tuning default).

    ``embed(batch)``: PyG Batch (spec ``hu2020_spec()``) -> float [B, out_dim];
    ``node_embeddings(batch)`` -> float [N, hidden_dim].
    """

    family = "hu2020"
    conv_class: type[nn.Module] = HuGCNConv
    default_spec = staticmethod(hu2020_spec)
    source = "https://github.com/snap-stanford/pretrain-gnns/tree/master/chem/model_architecture"
    num_atom_type = NUM_ATOM_TYPE

    def __init__(
        self,
        spec: FeaturizerSpec | None = None,
        hidden_dim: int = 300,
        num_layers: int = 5,
        dropout: float = 0.0,
        readout: str = "mean",
    ):
        super().__init__()
        spec = spec if spec is not None else self.default_spec()
        check_spec(spec, self.default_spec(), self.family)
        self.spec = spec
        self.args = dict(hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout, readout=readout)
        self.x_embedding1 = nn.Embedding(self.num_atom_type, hidden_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY, hidden_dim)
        nn.init.xavier_uniform_(self.x_embedding1.weight)
        nn.init.xavier_uniform_(self.x_embedding2.weight)
        self.gnns = nn.ModuleList(self.conv_class(hidden_dim) for _ in range(num_layers))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(hidden_dim) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.readout = make_readout(readout, hidden_dim)

    @property
    def out_dim(self) -> int:
        return self.args["hidden_dim"] * readout_width(self.args["readout"])

    def embed(self, batch) -> torch.Tensor:
        return self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)


class Hu2020GCN(Hu2020Encoder):
    """Hu et al. 2020 GCN (``gcn_*.pth``, 507,905 parameters at width 300)."""

    family = "hu2020_gcn"
    conv_class = HuGCNConv


class Hu2020SAGE(Hu2020Encoder):
    """Hu et al. 2020 GraphSAGE (``graphsage_*.pth``, same key layout as the GCN)."""

    family = "hu2020_sage"
    conv_class = HuSAGEConv


class Hu2020GAT(Hu2020Encoder):
    """Hu et al. 2020 GAT (``gat_*.pth``, 2 heads of width 300, 980,405 parameters)."""

    family = "hu2020_gat"
    conv_class = HuGATConv
