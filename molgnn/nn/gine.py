"""GIN encoder with bond features (GINE, Hu et al. 2020), optional residuals and jumping knowledge."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GINEConv, JumpingKnowledge

from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.embedding import FeatureEmbedding
from molgnn.nn.readout import make_readout

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": lambda dim: nn.Identity()}


class GINEEncoder(nn.Module):
    """Molecular graph -> embedding.

    ``forward(batch)`` / ``embed(batch)``: PyG Batch with x long [N, Fa], edge_attr long [E, Fb] ->
    float [B, out_dim]. ``node_embeddings(batch)`` -> float [N, hidden_dim].
    """

    family = "gine"

    def __init__(self, spec: FeaturizerSpec, hidden_dim: int = 300, num_layers: int = 5, dropout: float = 0.0,
                 residual: bool = True, jk: str = "last", readout: str = "sum", train_eps: bool = False,
                 norm: str = "batch"):
        super().__init__()
        if jk not in ("last", "cat", "max"):
            raise ValueError(f"encoder.jk must be 'last', 'cat' or 'max', got {jk!r}")
        if norm not in NORMS:
            raise ValueError(f"encoder.norm must be one of {sorted(NORMS)}, got {norm!r}")
        self.spec = spec
        self.args = dict(hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout, residual=residual,
                         jk=jk, readout=readout, train_eps=train_eps, norm=norm)
        self.atom_embedding = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)
        self.bond_embeddings = nn.ModuleList(
            FeatureEmbedding(spec.bond_vocab_sizes, hidden_dim) for _ in range(num_layers))
        self.convs = nn.ModuleList(
            GINEConv(nn.Sequential(nn.Linear(hidden_dim, hidden_dim), NORMS[norm](hidden_dim), nn.ReLU(),
                                   nn.Linear(hidden_dim, hidden_dim)), train_eps=train_eps)
            for _ in range(num_layers))
        self.norms = nn.ModuleList(NORMS[norm](hidden_dim) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.jk = JumpingKnowledge(jk, hidden_dim, num_layers) if jk != "last" else None
        self.node_dim = hidden_dim * num_layers if jk == "cat" else hidden_dim
        self.readout = make_readout(readout, self.node_dim)

    @property
    def out_dim(self) -> int:
        return self.node_dim

    @property
    def layers(self) -> list[nn.Module]:
        """Message-passing layers in order, each with its own bond embedding and norm (for freezing)."""
        return [nn.ModuleList([c, b, n]) for c, b, n in zip(self.convs, self.bond_embeddings, self.norms)]

    def node_embeddings(self, batch) -> torch.Tensor:
        h = self.atom_embedding(batch.x)
        per_layer = []
        for i, (conv, bond_emb, norm) in enumerate(zip(self.convs, self.bond_embeddings, self.norms)):
            out = norm(conv(h, batch.edge_index, bond_emb(batch.edge_attr)))
            if i < len(self.convs) - 1:
                out = torch.relu(out)
            out = self.dropout(out)
            h = h + out if self.args["residual"] else out
            per_layer.append(h)
        return self.jk(per_layer) if self.jk is not None else h

    def embed(self, batch) -> torch.Tensor:
        return self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)

    def forward(self, batch) -> torch.Tensor:
        return self.embed(batch)
