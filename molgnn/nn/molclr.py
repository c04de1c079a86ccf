"""The MolCLR GCN encoder (Wang et al. 2022), layer for layer, on PyG ``MessagePassing``.

Re-implemented from yuyangw/MolCLR ``models/gcn_molclr.py`` (MIT) with the same parameter names, so the
published ``pretrained_gcn/model.pth`` loads with no missing or unexpected key. Their layer computes a GCN
normalisation and then does not use it: messages are ``x_j W + e_ij`` with *scalar* bond embeddings
(broadcast over the channels), summed over neighbours and a self-loop (bond type 4), plus a bias. Graph
representation = ``feat_lin(mean_pool(h))`` (512-d), the features their fine-tuning model builds on.
``out_lin`` is their contrastive projection head: kept so the checkpoint loads whole, never used by
``embed`` and never trained here.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from molgnn.featurize.foreign import molclr_spec
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.hu2020 import NUM_BOND_DIR, NUM_CHIRALITY, AtomTypeGNNStack, add_self_loop_edges, check_spec
from molgnn.nn.readout import make_readout, readout_width
from molgnn.nn.encoder import Encoder

NUM_ATOM_TYPE, NUM_BOND_TYPE = 119, 5  # their table sizes (atom mask and bond self-loop included)


class MolCLRGCNConv(MessagePassing):
    """out_i = sum_{j in N(i) + i} (x_j W + e1[type_ij] + e2[dir_ij]) + b, with scalar edge embeddings."""

    def __init__(self, emb_dim: int):
        super().__init__(aggr="add")
        self.weight = nn.Parameter(torch.empty(emb_dim, emb_dim))
        self.bias = nn.Parameter(torch.zeros(emb_dim))
        bound = math.sqrt(6.0 / (2 * emb_dim))
        nn.init.uniform_(self.weight, -bound, bound)
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, 1)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIR, 1)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        edge_index, edge_attr = add_self_loop_edges(edge_index, edge_attr, x.size(0))
        edge_emb = self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(edge_attr[:, 1])  # [E + N, 1]
        return self.propagate(edge_index, x=x @ self.weight, edge_attr=edge_emb) + self.bias

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return x_j + edge_attr


class MolCLRGCN(AtomTypeGNNStack, Encoder):
    """MolCLR GCN: embeddings -> ``num_layers`` x (conv -> batch norm -> ReLU except after the last ->
    dropout) -> mean pool -> ``feat_lin``.

    ``embed(batch)``: PyG Batch (spec ``molclr_spec()``) -> float [B, feat_dim];
    ``node_embeddings(batch)`` -> float [N, hidden_dim].
    """

    family = "molclr_gcn"
    default_spec = staticmethod(molclr_spec)
    source = "https://github.com/yuyangw/MolCLR/tree/master/ckpt/pretrained_gcn/checkpoints"

    def __init__(
        self,
        spec: FeaturizerSpec | None = None,
        hidden_dim: int = 300,
        num_layers: int = 5,
        feat_dim: int = 512,
        dropout: float = 0.0,
        readout: str = "mean",
    ):
        super().__init__()
        spec = spec if spec is not None else self.default_spec()
        check_spec(spec, self.default_spec(), self.family)
        self.spec = spec
        self.args = dict(
            hidden_dim=hidden_dim, num_layers=num_layers, feat_dim=feat_dim, dropout=dropout, readout=readout
        )
        self.x_embedding1 = nn.Embedding(NUM_ATOM_TYPE, hidden_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY, hidden_dim)
        nn.init.xavier_uniform_(self.x_embedding1.weight)
        nn.init.xavier_uniform_(self.x_embedding2.weight)
        self.gnns = nn.ModuleList(MolCLRGCNConv(hidden_dim) for _ in range(num_layers))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(hidden_dim) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.readout = make_readout(readout, hidden_dim)
        self.feat_lin = nn.Linear(hidden_dim * readout_width(readout), feat_dim)
        self.out_lin = nn.Sequential(
            nn.Linear(feat_dim, feat_dim), nn.ReLU(), nn.Linear(feat_dim, feat_dim // 2)
        )
        self.out_lin.requires_grad_(False)  # contrastive projection head: loaded, not used, not trained

    @property
    def out_dim(self) -> int:
        return self.args["feat_dim"]

    def embed(self, batch) -> torch.Tensor:
        pooled = self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)
        return self.feat_lin(pooled)
