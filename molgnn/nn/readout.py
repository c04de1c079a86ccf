"""Graph readout (node embeddings -> graph embedding) built on PyG aggregations."""

from __future__ import annotations

from torch import nn
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.nn.resolver import aggregation_resolver

READOUTS = ("mean", "sum", "max", "attention")


def make_readout(kind: str, dim: int) -> nn.Module:
    """A PyG aggregation: ``mean``/``sum``/``max`` or ``attention`` (gated attention pooling, Li et al.)."""
    if kind not in READOUTS:
        raise ValueError(f"encoder.readout must be one of {READOUTS}, got {kind!r}")
    if kind == "attention":
        return AttentionalAggregation(
            gate_nn=nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        )
    return aggregation_resolver(kind)
