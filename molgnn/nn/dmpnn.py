"""Directed message passing (D-MPNN, Yang et al. 2019 / Chemprop) on molgnn graphs.

Hidden states live on directed bonds. Edges come interleaved from the featurizer (bond k is edges 2k and
2k+1, one per direction), so the reverse of edge ``e`` is ``e ^ 1``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.embedding import FeatureEmbedding
from molgnn.nn.readout import make_readout


class DMPNNEncoder(nn.Module):
    """Molecular graph -> embedding with bond-centred message passing.

    h0_e = relu(W_i [x_src || e]); for depth-1 steps: m_e = sum_{k -> src(e)} h_k - h_rev(e),
    h_e = relu(h0_e + W_h m_e); atoms: h_v = relu(W_o [x_v || sum_{e -> v} h_e]); readout over atoms.
    ``embed(batch)`` -> float [B, hidden_dim]; ``node_embeddings(batch)`` -> float [N, hidden_dim].
    """

    family = "dmpnn"

    def __init__(self, spec: FeaturizerSpec, hidden_dim: int = 300, num_layers: int = 3, dropout: float = 0.0,
                 readout: str = "sum", readout_scale: float = 0.01, batch_norm: bool = False):
        super().__init__()
        self.spec = spec
        self.args = dict(hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout, readout=readout,
                         readout_scale=readout_scale, batch_norm=batch_norm)
        self.input_atom = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)   # W_i, atom part (one-hot @ W)
        self.input_bond = FeatureEmbedding(spec.bond_vocab_sizes, hidden_dim)   # W_i, bond part
        self.input_bias = nn.Parameter(torch.zeros(hidden_dim))
        self.message = nn.Linear(hidden_dim, hidden_dim, bias=False)             # W_h, shared over depth
        self.output_atom = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)  # W_o, atom part
        self.output_msg = nn.Linear(hidden_dim, hidden_dim)                      # W_o, message part
        self.dropout = nn.Dropout(dropout)
        self.readout = make_readout(readout, hidden_dim)
        self.norm = nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity()

    @property
    def out_dim(self) -> int:
        return self.args["hidden_dim"]

    @property
    def layers(self) -> list[nn.Module]:
        """Parameter groups in order of depth (input, message passing, output), for freezing."""
        return [nn.ModuleList([self.input_atom, self.input_bond]), self.message,
                nn.ModuleList([self.output_atom, self.output_msg])]

    def node_embeddings(self, batch) -> torch.Tensor:
        src, dst = batch.edge_index
        num_nodes = batch.x.size(0)
        h0 = self.input_atom(batch.x)[src] + self.input_bond(batch.edge_attr) + self.input_bias
        h = torch.relu(h0)
        reverse = torch.arange(h.size(0), device=h.device) ^ 1
        for _ in range(self.args["num_layers"] - 1):
            incoming = scatter(h, dst, dim=0, dim_size=num_nodes, reduce="sum")  # sum of edges into each atom
            m = incoming[src] - h[reverse]
            h = self.dropout(torch.relu(h0 + self.message(m)))
        atom_msg = scatter(h, dst, dim=0, dim_size=num_nodes, reduce="sum")
        return self.dropout(torch.relu(self.output_atom(batch.x) + self.output_msg(atom_msg)))

    def embed(self, batch) -> torch.Tensor:
        h = self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)
        if self.args["readout"] == "sum":
            h = h * self.args["readout_scale"]
        return self.norm(h)

    def forward(self, batch) -> torch.Tensor:
        return self.embed(batch)
