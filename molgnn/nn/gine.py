"""GIN encoder with bond features (GINE, Hu et al. 2020) and depth switches (``molgnn.nn.depth``)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GINEConv, JumpingKnowledge

from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.depth import (
    VirtualNode,
    check_depth_args,
    drop_bonds,
    make_gates,
    make_global_attention,
    make_pair_norm,
    pair_norm_mode,
)
from molgnn.nn.embedding import FeatureEmbedding
from molgnn.nn.readout import make_readout, readout_width
from molgnn.nn.encoder import Encoder

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": lambda dim: nn.Identity()}


class GINEEncoder(Encoder):
    """Molecular graph -> embedding.

    ``forward(batch)`` / ``embed(batch)``: PyG Batch with x long [N, Fa], edge_attr long [E, Fb] ->
    float [B, out_dim]. ``node_embeddings(batch)`` -> float [N, node_dim]; ``layer_states(batch)`` ->
    num_layers + 1 tensors float [N, hidden_dim] (input embedding, then after each layer).
    """

    family = "gine"

    def __init__(
        self,
        spec: FeaturizerSpec,
        hidden_dim: int = 300,
        num_layers: int = 5,
        dropout: float = 0.0,
        residual: bool = True,
        jk: str = "last",
        readout: str = "sum",
        train_eps: bool = False,
        norm: str = "batch",
        virtual_node: bool = False,
        pair_norm: bool | str = False,
        drop_edge: float = 0.0,
        global_attention: int = 0,
        gate: bool = False,
    ):
        super().__init__()
        check_depth_args(num_layers, jk, drop_edge, global_attention, hidden_dim, gate, residual)
        self.pair_norm_last = pair_norm_mode(pair_norm) == "last"  # GINE: after the layer before the last
        if norm not in NORMS:
            raise ValueError(f"encoder.norm must be one of {sorted(NORMS)}, got {norm!r}")
        self.spec = spec
        self.args = dict(
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            residual=residual,
            jk=jk,
            readout=readout,
            train_eps=train_eps,
            norm=norm,
            virtual_node=virtual_node,
            pair_norm=pair_norm,
            drop_edge=drop_edge,
            global_attention=global_attention,
            gate=gate,
        )
        self.atom_embedding = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)
        self.bond_embeddings = nn.ModuleList(
            FeatureEmbedding(spec.bond_vocab_sizes, hidden_dim) for _ in range(num_layers)
        )
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(
                    nn.Linear(hidden_dim, hidden_dim),
                    NORMS[norm](hidden_dim),
                    nn.ReLU(),
                    nn.Linear(hidden_dim, hidden_dim),
                ),
                train_eps=train_eps,
            )
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(NORMS[norm](hidden_dim) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.jk = JumpingKnowledge(jk, hidden_dim, num_layers) if jk != "last" else None
        self.node_dim = hidden_dim * num_layers if jk == "cat" else hidden_dim
        self.readout = make_readout(readout, self.node_dim)
        if virtual_node:
            self.virtual_node = VirtualNode(
                hidden_dim, max(num_layers - 1, 1)
            )  # one update per layer, OGB style
        self.pair_norm = make_pair_norm(pair_norm)
        self.attention = make_global_attention(global_attention, hidden_dim, dropout, num_layers)
        self.gate = make_gates(gate, hidden_dim, num_layers)

    @property
    def out_dim(self) -> int:
        return self.node_dim * readout_width(self.args["readout"])

    @property
    def layers(self) -> list[nn.Module]:
        """Message-passing layers in order, each with its own bond embedding, norm and (with ``virtual_node``)
        the virtual-node update that follows it (for freezing)."""
        vns = list(self.virtual_node.updates) if self.args["virtual_node"] else []
        attns = list(self.attention) if self.attention is not None else []
        gates = list(self.gate) if self.gate is not None else []
        return [
            nn.ModuleList([c, b, n, *vns[i : i + 1], *attns[i : i + 1], *gates[i : i + 1]])
            for i, (c, b, n) in enumerate(zip(self.convs, self.bond_embeddings, self.norms))
        ]

    def _states(self, batch) -> list[torch.Tensor]:
        """Atom states: input embedding, then after each layer; num_layers + 1 x float [N, hidden_dim]."""
        edge_index, edge_attr = drop_bonds(
            batch.edge_index, batch.edge_attr, self.args["drop_edge"], self.training
        )
        h = self.atom_embedding(batch.x)
        g = self.virtual_node.initial(batch.num_graphs, h) if self.args["virtual_node"] else None
        states, last = [h], len(self.convs) - 1
        for i, (conv, bond_emb, norm) in enumerate(zip(self.convs, self.bond_embeddings, self.norms)):
            x = h if g is None else h + g[batch.batch]
            out = norm(conv(x, edge_index, bond_emb(edge_attr)))
            if self.attention is not None:  # GPS: local message passing + global attention, summed
                out = out + self.attention[i](x, batch.batch, batch.num_graphs)
            if i < last:  # between layers only: PairNorm centres each molecule, so after the last layer a
                if self.pair_norm is not None and (i == last - 1 or not self.pair_norm_last):  # mean readout
                    out = self.pair_norm(out, batch.batch, batch.num_graphs)  # would be zero for all
                out = torch.relu(out)
            out = self.dropout(out)
            if self.gate is not None:
                h = self.gate[i](h, out)
            else:
                h = h + out if self.args["residual"] else out
            if g is not None and i < last:
                g = self.virtual_node.update(g, h, batch.batch, i)
            states.append(h)
        return states

    def node_embeddings(self, batch) -> torch.Tensor:
        per_layer = self._states(batch)[1:]
        return self.jk(per_layer) if self.jk is not None else per_layer[-1]

    def layer_states(self, batch) -> list[torch.Tensor]:
        return self._states(batch)

    def embed(self, batch) -> torch.Tensor:
        return self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)
