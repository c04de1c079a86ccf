"""Chemprop v2 (2.3.1) networks re-written on molgnn graphs: ``BondMessagePassing`` + aggregation (+ batch
norm) as an encoder, and the ``RegressionFFN`` MLP as a head. Parameter names are Chemprop's (``W_i``,
``W_h``, ``W_o``, ``bn``, ``ffn.<block>.<layer>``), so a Chemprop state dict loads strictly.

Facts of chemprop 2.3.1 reproduced (``nn/message_passing/base.py``, ``mixins.py``, ``nn/agg.py``,
``nn/ffn.py``, ``models/model.py``), with tau the activation:

- h0_e = W_i [x_src(e) || e_e] (bias optional), h_e = tau(h0_e);
- depth - 1 times: (undirected: h_e = (h_e + h_rev(e)) / 2), m_e = sum_{k -> src(e)} h_k - h_rev(e),
  h_e = dropout(tau(h0_e + W_h m_e));
- atoms: m_v = sum_{e -> v} h_e, h_v = dropout(tau(W_o [x_v || m_v])) (W_o always has a bias);
- molecule: mean, sum, or sum / norm (``NormAggregation``, norm 100 by default) of h_v, then batch norm when
  the model was trained with it;
- FFN: Linear, then per further layer (tau, dropout, Linear); the output is unscaled (y * scale + mean)
  by the model's saved scaler, which molgnn's ``Predictor`` applies from the header.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from molgnn.featurize.chemprop import BOND_FDIM, atom_fdim, chemprop_inputs, chemprop_spec
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.dmpnn import compute_width, zero_pad
from molgnn.nn.hu2020 import check_spec
from molgnn.nn.encoder import Encoder

# torch activations a Chemprop file may name; molgnn builds these itself (never from the file)
ACTIVATIONS = (
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "Tanh",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Sigmoid",
    "Softplus",
    "Mish",
    "ReLU6",
    "Hardswish",
    "Hardtanh",
    "Hardsigmoid",
    "Tanhshrink",
    "Softsign",
    "LogSigmoid",
    "RReLU",
)
AGGREGATIONS = ("mean", "sum", "norm")


def make_activation(name: str, args: dict | None = None) -> nn.Module:
    """An allow-listed ``torch.nn`` activation built with keyword ``args`` (e.g. LeakyReLU negative_slope)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
    cls = getattr(nn, name)
    allowed = set(inspect.signature(cls).parameters) - {"inplace", "device", "dtype"}
    unknown = sorted(set(args or {}) - allowed)
    if unknown:
        raise ValueError(f"activation {name} takes no argument(s) {unknown}")
    return cls(**(args or {}))


def _padded(linear: nn.Linear, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [rows, cols], bias [rows] or None) of ``linear``, zero-padded."""
    bias = None if linear.bias is None else zero_pad(linear.bias, rows)
    return zero_pad(linear.weight, rows, cols), bias


class BondMessagePassing(nn.Module):
    """Chemprop's ``BondMessagePassing``: (V float [N, d_v], E float [E, 14], edge_index [2, E]) -> atom
    hidden states float [N, d_h]. Reverse edges are e ^ 1 (molgnn's interleaved edge order)."""

    def __init__(
        self,
        d_v: int,
        d_h: int,
        depth: int,
        bias: bool,
        dropout: float,
        activation: nn.Module,
        undirected: bool,
    ):
        super().__init__()
        self.W_i = nn.Linear(d_v + BOND_FDIM, d_h, bias)
        self.W_h = nn.Linear(d_h, d_h, bias)
        self.W_o = nn.Linear(d_v + d_h, d_h)
        self.dropout = nn.Dropout(dropout)
        self.tau = activation
        self.depth, self.undirected = depth, undirected

    def forward(self, V: torch.Tensor, E: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Computed at ``compute_width(d_h)`` like molgnn's D-MPNN: W_i's and W_h's outputs and W_h's and
        W_o's message inputs are zero-padded, so whatever the activation makes of the padded columns meets
        zero weights; the output is sliced back to d_h."""
        src, dst = edge_index
        d = self.W_h.out_features
        w, d_v = compute_width(d), V.size(1)
        rev = torch.arange(E.size(0), device=E.device) ^ 1
        h0 = F.linear(torch.cat([V[src], E], dim=1), *_padded(self.W_i, w, self.W_i.in_features))
        h = self.tau(h0)
        W_h = _padded(self.W_h, w, w)
        for _ in range(1, self.depth):
            if self.undirected:
                h = (h + h[rev]) / 2
            m = scatter(h, dst, dim=0, dim_size=V.size(0), reduce="sum")[src] - h[rev]
            h = self.dropout(self.tau(h0 + F.linear(m, *W_h)))
        m_v = scatter(h, dst, dim=0, dim_size=V.size(0), reduce="sum")
        W_o = torch.cat([self.W_o.weight[:, :d_v], zero_pad(self.W_o.weight[:, d_v:], d, w)], dim=1)
        out = F.linear(torch.cat([V, m_v], dim=1), zero_pad(W_o, w, d_v + w), zero_pad(self.W_o.bias, w))
        return self.dropout(self.tau(out))[:, :d]


class ChempropEncoder(Encoder):
    """A Chemprop v2 model's encoder: PyG Batch (spec ``chemprop_spec(mode)``) -> learned fingerprint float
    [B, hidden_dim] (``embed``/``forward``: aggregation then batch norm); ``node_embeddings`` -> [N, hidden_dim].
    """

    family = "chemprop"
    default_spec = staticmethod(chemprop_spec)
    source = (
        "a Chemprop 2.x model file (chemprop train ... -> model_0/best.pt), or CheMeleon's chemeleon_mp.pt"
    )

    def __init__(
        self,
        spec: FeaturizerSpec | None = None,
        mode: str = "V2",
        hidden_dim: int = 300,
        depth: int = 3,
        bias: bool = False,
        dropout: float = 0.0,
        activation: str = "ReLU",
        activation_args: dict | None = None,
        undirected: bool = False,
        aggregation: str = "norm",
        norm: float = 100.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        spec = spec if spec is not None else chemprop_spec(mode)
        check_spec(spec, chemprop_spec(mode), self.family)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.spec = spec
        self.args = dict(
            mode=mode,
            hidden_dim=hidden_dim,
            depth=depth,
            bias=bias,
            dropout=dropout,
            activation=activation,
            activation_args=dict(activation_args or {}),
            undirected=undirected,
            aggregation=aggregation,
            norm=float(norm),
            batch_norm=batch_norm,
        )
        self.message_passing = BondMessagePassing(
            atom_fdim(spec),
            hidden_dim,
            depth,
            bias,
            dropout,
            make_activation(activation, activation_args),
            undirected,
        )
        self.bn = nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity()

    @property
    def out_dim(self) -> int:
        return self.args["hidden_dim"]

    @property
    def layers(self) -> list[nn.Module]:
        """Parameter groups in order of depth (input, message, output + batch norm), for freezing."""
        mp = self.message_passing
        return [mp.W_i, nn.ModuleList([mp.W_h, mp.tau]), nn.ModuleList([mp.W_o, self.bn])]

    @property
    def embeddings(self) -> list[nn.Module]:
        return []

    def node_embeddings(self, batch) -> torch.Tensor:
        V, E = chemprop_inputs(self.spec, batch.x, batch.edge_attr)
        return self.message_passing(V, E, batch.edge_index)

    def embed(self, batch) -> torch.Tensor:
        h = self.node_embeddings(batch)
        reduce = "mean" if self.args["aggregation"] == "mean" else "sum"
        h = scatter(h, batch.batch, dim=0, dim_size=batch.num_graphs, reduce=reduce)
        if self.args["aggregation"] == "norm":
            h = h / self.args["norm"]
        return self.bn(h)


class ChempropFFN(nn.Module):
    """Chemprop's predictor MLP: float [B, in_dim] -> float [B, out_dim] (scaled units). Block 0 is a Linear;
    each further block is (activation, dropout, Linear), the activation module shared as in Chemprop."""

    family = "chemprop_ffn"

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dims: list[int] | tuple = (300,),
        dropout: float = 0.0,
        activation: str = "ReLU",
        activation_args: dict | None = None,
    ):
        super().__init__()
        self.args = dict(
            in_dim=in_dim,
            out_dim=out_dim,
            hidden_dims=list(hidden_dims),
            dropout=dropout,
            activation=activation,
            activation_args=dict(activation_args or {}),
        )
        act, drop = make_activation(activation, activation_args), nn.Dropout(dropout)
        dims = [in_dim, *hidden_dims, out_dim]
        blocks = [nn.Sequential(nn.Linear(dims[0], dims[1]))]
        blocks += [nn.Sequential(act, drop, nn.Linear(a, b)) for a, b in zip(dims[1:-1], dims[2:])]
        self.ffn = nn.Sequential(*blocks)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ffn(h)
