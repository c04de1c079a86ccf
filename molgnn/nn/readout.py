"""Graph readout (node embeddings -> graph embedding) built on PyG aggregations.

A readout is one pooling (``sum``, ``mean``, ``max``, ``attention``) or several joined by ``+``
(``sum+mean``): their outputs are concatenated in that order, so the graph embedding is ``readout_width``
times the node width. ``sum`` counts atoms (size-extensive), ``mean`` does not; together a frozen embedding
carries both (bench/results/frozen_readout.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.nn.resolver import aggregation_resolver

READOUTS = ("mean", "sum", "max", "attention")


def readout_kinds(kind: str) -> list[str]:
    """``"sum+mean"`` -> ["sum", "mean"]; an unknown or repeated pooling is a ValueError naming
    ``encoder.readout``."""
    kinds = str(kind).split("+")
    unknown = [k for k in kinds if k not in READOUTS]
    if unknown or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"encoder.readout must be one of {READOUTS} or several of them joined by '+' (each once), "
            f"got {kind!r}"
        )
    return kinds


def readout_width(kind: str) -> int:
    """How many node widths the graph embedding of readout ``kind`` spans."""
    return len(readout_kinds(kind))


def _pool(kind: str, dim: int) -> nn.Module:
    if kind == "attention":
        return AttentionalAggregation(
            gate_nn=nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        )
    return aggregation_resolver(kind)


class Readout(nn.Module):
    """Several poolings concatenated: node states float [N, d], graph index long [N] -> float
    [B, d * len(kinds)]; the ``sum`` part multiplied by ``sum_scale``."""

    def __init__(self, kinds: list[str], dim: int, sum_scale: float = 1.0):
        super().__init__()
        self.kinds, self.sum_scale = list(kinds), float(sum_scale)
        self.pools = nn.ModuleList(_pool(k, dim) for k in kinds)

    def forward(self, h: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
        parts = [pool(h, index, dim_size=dim_size) for pool in self.pools]
        parts = [p * self.sum_scale if k == "sum" else p for k, p in zip(self.kinds, parts)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def make_readout(kind: str, dim: int, sum_scale: float = 1.0) -> nn.Module:
    """The readout for ``kind`` over ``dim``-wide node states. A lone ``attention`` is PyG's gated attention
    pooling (Li et al.) itself, so the weights keep the names files were saved with."""
    kinds = readout_kinds(kind)
    if kinds == ["attention"]:
        return _pool("attention", dim)
    return Readout(kinds, dim, sum_scale)
