"""Directed message passing (D-MPNN, Yang et al. 2019 / Chemprop) on molgnn graphs.

Hidden states live on directed bonds. Edges come interleaved from the featurizer (bond k is edges 2k and
2k+1, one per direction), so the reverse of edge ``e`` is ``e ^ 1``. Depth switches (``residual``, ``jk``,
``virtual_node``, ``pair_norm``, ``drop_edge``, ``global_attention``, ``gate``; see ``molgnn.nn.depth``) are off by default, and off they
build exactly Chemprop's network (same parameters, same outputs). ``shared_weights=False`` gives each step its
own message matrix W_h (Chemprop shares one over depth).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import JumpingKnowledge

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

SIMD_FLOATS = 16  # fp32 lanes of an AVX-512 register: GEMMs whose output width is a multiple run 1.6x faster


class DMPNNEncoder(Encoder):
    """Molecular graph -> embedding with bond-centred message passing.

    h0_e = relu(W_i [x_src || e]); for depth-1 steps: m_e = sum_{k -> src(e)} h_k - h_rev(e),
    h_e = relu(h0_e + W_h m_e) (+ h_e with ``residual``; gated with h_e with ``gate``); atoms: h_v = relu(W_o [x_v || sum_{e -> v} h_e])
    (with ``jk``: the sums of every step, concatenated or max-pooled); readout over atoms.
    ``embed(batch)`` -> float [B, out_dim] (hidden_dim x the number of poolings in ``readout``);
    ``node_embeddings(batch)`` -> float [N, hidden_dim];
    ``layer_states(batch)`` -> num_layers + 1 tensors float [N, hidden_dim] (atom view after each step, then
    the atom outputs).

    Internally every state is ``compute_width(hidden_dim)`` wide (300 -> 304): the weights are zero-padded on
    the fly (``F.pad``, differentiable, the parameters keep their shapes), so the extra columns stay exactly
    zero and the outputs are those of the ``hidden_dim``-wide network, while every GEMM's output width is a
    multiple of 16 floats, which runs 1.6x faster on AVX-512 CPUs (bench/bench_speed.py).
    """

    family = "dmpnn"

    def __init__(
        self,
        spec: FeaturizerSpec,
        hidden_dim: int = 300,
        num_layers: int = 3,
        dropout: float = 0.0,
        readout: str = "sum",
        readout_scale: float = 0.01,
        batch_norm: bool = False,
        residual: bool = False,
        jk: str = "last",
        virtual_node: bool = False,
        pair_norm: bool | str = False,
        drop_edge: float = 0.0,
        global_attention: int = 0,
        gate: bool = False,
        shared_weights: bool = True,
    ):
        super().__init__()
        check_depth_args(num_layers, jk, drop_edge, global_attention, hidden_dim, gate, residual)
        self.pair_norm_last = pair_norm_mode(pair_norm) == "last"
        self.spec = spec
        self.args = dict(
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            readout=readout,
            readout_scale=readout_scale,
            batch_norm=batch_norm,
            residual=residual,
            jk=jk,
            virtual_node=virtual_node,
            pair_norm=pair_norm,
            drop_edge=drop_edge,
            global_attention=global_attention,
            gate=gate,
            shared_weights=shared_weights,
        )
        self.input_atom = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)  # W_i, atom part (one-hot @ W)
        self.input_bond = FeatureEmbedding(spec.bond_vocab_sizes, hidden_dim)  # W_i, bond part
        self.input_bias = nn.Parameter(torch.zeros(hidden_dim))
        if shared_weights:
            self.message = nn.Linear(hidden_dim, hidden_dim, bias=False)  # W_h, shared over depth
        else:  # one W_h per step
            steps = max(num_layers - 1, 1)
            self.message_steps = nn.ModuleList(
                nn.Linear(hidden_dim, hidden_dim, bias=False) for _ in range(steps)
            )
        self.output_atom = FeatureEmbedding(spec.atom_vocab_sizes, hidden_dim)  # W_o, atom part
        msg_dim = hidden_dim * num_layers if jk == "cat" else hidden_dim
        self.output_msg = nn.Linear(msg_dim, hidden_dim)  # W_o, message part
        self.dropout = nn.Dropout(dropout)
        self.readout = make_readout(readout, hidden_dim, readout_scale)  # the sum part scaled
        self.norm = nn.BatchNorm1d(self.out_dim) if batch_norm else nn.Identity()
        if virtual_node:
            self.virtual_node = VirtualNode(hidden_dim, 1)  # shared over depth, like W_h
        self.pair_norm = make_pair_norm(pair_norm)
        self.attention = make_global_attention(global_attention, hidden_dim, dropout, 1)  # shared, like W_h
        self.gate = make_gates(gate, hidden_dim, 1)  # shared over depth, like W_h
        self.jk = JumpingKnowledge(jk) if jk != "last" else None  # cat / max: no parameters

    @property
    def out_dim(self) -> int:
        return self.args["hidden_dim"] * readout_width(self.args["readout"])

    @property
    def layers(self) -> list[nn.Module]:
        """Parameter groups in order of depth (input, message passing, output), for freezing."""
        middle = [self._messages(), *([self.virtual_node] if self.args["virtual_node"] else [])]
        middle += [self.attention] if self.attention is not None else []
        middle += [self.gate] if self.gate is not None else []
        return [
            nn.ModuleList([self.input_atom, self.input_bond]),
            nn.ModuleList(middle),
            nn.ModuleList([self.output_atom, self.output_msg]),
        ]

    def _messages(self) -> nn.ModuleList:
        """The message matrices W_h: one shared over depth, or one per step."""
        if self.args["shared_weights"]:
            return nn.ModuleList([self.message])
        return self.message_steps

    def _edge_states(self, batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Directed-edge states after the input and each step: num_layers x float [E', w] (w =
        ``compute_width(d)``, columns d: are zero); and dst long [E'] (E' < E when ``drop_edge`` removed bonds
        in training)."""
        edge_index, edge_attr = drop_bonds(
            batch.edge_index, batch.edge_attr, self.args["drop_edge"], self.training
        )
        src, dst = edge_index
        num_nodes, graph_of = batch.x.size(0), batch.batch
        d, w = self.args["hidden_dim"], compute_width(self.args["hidden_dim"])
        h0 = self.input_atom(batch.x, w).index_select(0, src) + self.input_bond(edge_attr, w)
        h0 = h0 + zero_pad(self.input_bias, w)
        h = torch.relu(h0)
        g = self.virtual_node.initial(batch.num_graphs, h[:, :d]) if self.args["virtual_node"] else None
        weights = [zero_pad(m.weight, w, w) for m in self._messages()]
        states = [h]
        steps = self.args["num_layers"] - 1
        for step in range(steps):
            incoming = _sum_into(h, dst, num_nodes)  # sum of edges into each atom
            if g is not None:
                incoming = incoming + zero_pad(g, w)[graph_of]
            if self.attention is not None:  # every atom hears every other atom of its molecule
                glob = self.attention[0](incoming[:, :d], graph_of, batch.num_graphs)
                incoming = incoming + zero_pad(glob, w)
            # h0 + W_h (incoming[src] - h[reverse]) in one GEMM; the reverse edge's state is subtracted in place
            message = _minus_reverse(incoming.index_select(0, src), h)
            new = torch.relu_(_add_linear(h0, message, weights[step % len(weights)]))
            if self.pair_norm is not None and (step == steps - 1 or not self.pair_norm_last):
                new = self.pair_norm(new, graph_of[src], batch.num_graphs)
            new = self.dropout(new)
            if self.gate is not None:
                h = self.gate[0](h, new)
            else:
                h = h + new if self.args["residual"] else new
            if g is not None:
                g = self.virtual_node.update(g, _sum_into(h, dst, num_nodes)[:, :d], graph_of, 0)
            states.append(h)
        return states, dst

    def _atom_states(self, batch, every_step: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Atom sums of incoming edge states (each step's with ``every_step`` or ``jk``, else the last one's;
        float [N, d] each) and atom outputs [N, d]."""
        states, dst = self._edge_states(batch)
        num_nodes, d = batch.x.size(0), self.args["hidden_dim"]
        w = compute_width(d)
        steps = states if every_step or self.jk is not None else states[-1:]
        sums = [_sum_into(h, dst, num_nodes) for h in steps]
        atom_msg = sums[-1] if self.jk is None else self.jk(sums)
        # W_o's message part [d, blocks * d] -> [w, blocks * w] (jk "cat": one block per step)
        blocks = self.output_msg.weight.size(1) // d
        weight = self.output_msg.weight.reshape(d, blocks, d)
        weight = zero_pad(weight, w).reshape(d, blocks * w)
        base = self.output_atom(batch.x, w) + zero_pad(self.output_msg.bias, w)
        out = _add_linear(base, atom_msg, zero_pad(weight, w, blocks * w))
        return [s[:, :d] for s in sums], self.dropout(torch.relu(out))[:, :d]

    def node_embeddings(self, batch) -> torch.Tensor:
        return self._atom_states(batch)[1]

    def layer_states(self, batch) -> list[torch.Tensor]:
        sums, out = self._atom_states(batch, every_step=True)
        return [*sums, out]

    def embed(self, batch) -> torch.Tensor:
        h = self.readout(self.node_embeddings(batch), batch.batch, dim_size=batch.num_graphs)
        return self.norm(h)


def compute_width(dim: int) -> int:
    """The width the states are computed at: ``dim`` rounded up to a multiple of ``SIMD_FLOATS``."""
    return -(-dim // SIMD_FLOATS) * SIMD_FLOATS


def zero_pad(t: torch.Tensor, *size: int) -> torch.Tensor:
    """``t`` [..., a] (or [a, b] with two sizes) with zero columns (and rows) up to ``size``; ``t`` itself
    when nothing is added."""
    pads = [0, size[-1] - t.size(-1)]
    if len(size) == 2:
        pads += [0, size[0] - t.size(-2)]
    return F.pad(t, pads) if any(pads) else t


def _minus_reverse(message: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """message[e] -= h[e ^ 1] in place (bond k is edges 2k and 2k + 1): two strided subtractions over the
    [E / 2, 2, d] view, no index. float [E, d] -> the same tensor."""
    pairs, states = message.view(-1, 2, message.size(1)), h.view(-1, 2, h.size(1))
    pairs[:, 0].sub_(states[:, 1])
    pairs[:, 1].sub_(states[:, 0])
    return message


def _sum_into(h: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """float [E, d] -> float [num_nodes, d]: row e added into row dst[e] (index_add_: no [E, d] index)."""
    return h.new_zeros(num_nodes, h.size(1)).index_add_(0, dst, h)


def _add_linear(base: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """base + x @ weight.T as one GEMM (addmm); under autocast, F.linear + add, so the sum keeps base's dtype."""
    if torch.is_autocast_enabled(x.device.type):
        return base + F.linear(x, weight)
    return torch.addmm(base, x, weight.t())
