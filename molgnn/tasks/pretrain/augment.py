"""Corruptions and augmentations of a batched molecular graph, in torch (no RDKit).

Masking an atom replaces its whole feature row with each feature's *unknown bucket* index (every
vocabulary of ``default_spec()`` has one, and the encoders' embedding tables have that row), so masking
needs no extra embedding row and never changes the FeaturizerSpec. Edges come in reverse pairs (bond k is
edges 2k, 2k+1), which D-MPNN relies on; bond deletion keeps or drops both directions together.
All functions return a shallow copy of the batch; the input batch is not modified.
"""

from __future__ import annotations

import copy

import torch
from torch_geometric.utils import scatter

from molgnn.featurize.spec import FeaturizerSpec


def unknown_row(vocabs) -> torch.Tensor:
    """long [F]: the unknown-bucket index of each feature."""
    return torch.tensor([v.unknown_index for v in vocabs], dtype=torch.long)


def mask_atoms(batch, node_mask: torch.Tensor, spec: FeaturizerSpec, edge_mask: torch.Tensor | None = None):
    """Copy of ``batch`` with atoms ``node_mask`` (bool [N]) and edges ``edge_mask`` (bool [E]) set to unknown."""
    out = copy.copy(batch)
    x = batch.x.clone()
    x[node_mask] = unknown_row(spec.atom_features).to(x.device)
    out.x = x
    if edge_mask is not None:
        edge_attr = batch.edge_attr.clone()
        edge_attr[edge_mask] = unknown_row(spec.bond_features).to(edge_attr.device)
        out.edge_attr = edge_attr
    return out


def drop_edges(batch, keep_edge: torch.Tensor):
    """Copy of ``batch`` keeping only edges ``keep_edge`` (bool [E], must be equal within each reverse pair)."""
    out = copy.copy(batch)
    out.edge_index = batch.edge_index[:, keep_edge]
    out.edge_attr = batch.edge_attr[keep_edge]
    return out


def random_bond_keep(num_edges: int, drop_rate: float, device=None) -> torch.Tensor:
    """bool [E]: True for kept edges; each bond (reverse pair) is dropped with probability ``drop_rate``."""
    keep = torch.rand(num_edges // 2, device=device) >= drop_rate
    return keep.repeat_interleave(2)


def random_node_mask(batch, rate: float) -> torch.Tensor:
    """bool [N]: each atom with probability ``rate``; at least one atom in the batch."""
    mask = torch.rand(batch.x.size(0), device=batch.x.device) < rate
    if not mask.any():
        mask[torch.randint(batch.x.size(0), (1,), device=batch.x.device)] = True
    return mask


def subgraph_nodes(batch, fraction: float, max_hops: int = 8) -> torch.Tensor:
    """bool [N]: per graph, a connected region grown breadth-first from a random atom until it holds about
    ``fraction`` of the graph's atoms (MolCLR's subgraph removal)."""
    n, device = batch.x.size(0), batch.x.device
    counts = torch.bincount(batch.batch, minlength=batch.num_graphs)
    start = torch.cumsum(counts, 0) - counts
    seeds = start + (torch.rand(batch.num_graphs, device=device) * counts).long().clamp(max=counts - 1)
    target = torch.ceil(fraction * counts.float()).long()
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    selected[seeds[counts > 0]] = True
    src, dst = batch.edge_index
    for _ in range(max_hops):
        size = scatter(selected.long(), batch.batch, dim=0, dim_size=batch.num_graphs, reduce="sum")
        grow = size < target
        if not grow.any():
            break
        reached = torch.zeros(n, dtype=torch.bool, device=device)
        reached[dst[selected[src]]] = True
        selected |= reached & grow[batch.batch]
    return selected


def remove_subgraph(batch, fraction: float, spec: FeaturizerSpec):
    """Copy of ``batch`` with a connected subgraph's atoms masked and every bond touching it removed."""
    nodes = subgraph_nodes(batch, fraction)
    src, dst = batch.edge_index
    return drop_edges(mask_atoms(batch, nodes, spec), ~(nodes[src] | nodes[dst]))
