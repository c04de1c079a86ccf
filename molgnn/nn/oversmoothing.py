"""Per-layer oversmoothing measures of node (atom) representations, and a way to read any encoder's layers.

All measures take states of one layer for a batch of molecules: x float [N, d], edge_index long [2, E]
(both directions of each bond), batch long [N] (molecule of each atom), num_graphs B.

- ``dirichlet_energy``: per molecule, (1 / n) * sum over bonds ||x_i - x_j||^2, averaged over molecules
  (Cai & Wang 2020; Rusch et al. 2023). 0 when every atom of a molecule has the same vector.
- ``relative_dirichlet_energy``: the same after dividing each molecule's vectors by their RMS norm, so a
  layer that merely scales its states up or down does not look smoother or rougher (scale-free).
- ``node_cosine``: mean pairwise cosine similarity of the atoms within a molecule (1 = collapsed).
- ``effective_rank``: exp(entropy of the normalised singular values) of a matrix (Roy & Vetterli 2007):
  how many directions the vectors really use (1 = all on one line).
- graph-level: ``graph_cosine`` and ``graph_effective_rank`` of the mean-pooled states across molecules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

EPS = 1e-12


def _per_graph_energy(
    x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """float [B]: (1 / n_g) * sum over undirected bonds of ||x_i - x_j||^2 (directed edges counted half)."""
    src, dst = edge_index
    diff = (x[src] - x[dst]).pow(2).sum(-1) / 2
    energy = scatter(diff, batch[src], dim=0, dim_size=num_graphs, reduce="sum")
    atoms = scatter(torch.ones_like(batch, dtype=x.dtype), batch, dim=0, dim_size=num_graphs, reduce="sum")
    return energy / atoms.clamp(min=1)


def dirichlet_energy(
    x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int
) -> float:
    """Mean over molecules of the per-atom Dirichlet energy (see module docstring)."""
    return _per_graph_energy(x.double(), edge_index, batch, num_graphs).mean().item()


def relative_dirichlet_energy(
    x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int
) -> float:
    """Dirichlet energy of each molecule's states divided by their mean squared norm (scale-free)."""
    x = x.double()
    sq = scatter(x.pow(2).sum(-1), batch, dim=0, dim_size=num_graphs, reduce="mean")
    x = x / sq.clamp(min=EPS).sqrt()[batch].unsqueeze(-1)
    return _per_graph_energy(x, edge_index, batch, num_graphs).mean().item()


def node_cosine(x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> float:
    """Mean over molecules with at least 2 atoms of the mean cosine over atom pairs i != j (NaN if none).
    Uses sum_{i != j} u_i . u_j = ||sum u||^2 - sum ||u_i||^2 for unit vectors u (no N x N matrix)."""
    u = F.normalize(x.double(), dim=-1, eps=EPS)
    total = scatter(u, batch, dim=0, dim_size=num_graphs, reduce="sum").pow(2).sum(-1)
    self_dots = scatter(u.pow(2).sum(-1), batch, dim=0, dim_size=num_graphs, reduce="sum")
    n = scatter(torch.ones_like(batch, dtype=u.dtype), batch, dim=0, dim_size=num_graphs, reduce="sum")
    many = n >= 2
    if not many.any():
        return float("nan")
    return ((total - self_dots)[many] / (n * (n - 1))[many]).mean().item()


def effective_rank(m: torch.Tensor) -> float:
    """exp(Shannon entropy of singular values / their sum) of float [R, d]; 0 for an all-zero matrix."""
    s = torch.linalg.svdvals(m.double())
    if s.sum() <= EPS:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()


def pairwise_cosine(m: torch.Tensor) -> float:
    """Mean cosine similarity over pairs of distinct rows of float [R, d] (NaN for fewer than 2 rows)."""
    r = m.size(0)
    if r < 2:
        return float("nan")
    u = F.normalize(m.double(), dim=-1, eps=EPS)
    return ((u.sum(0).pow(2).sum() - u.pow(2).sum()) / (r * (r - 1))).item()


def layer_measures(x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> dict:
    """Every measure for one layer's states x float [N, d] of a batch of molecules."""
    pooled = scatter(x.double(), batch, dim=0, dim_size=num_graphs, reduce="mean")
    return {
        "dirichlet_energy": dirichlet_energy(x, edge_index, batch, num_graphs),
        "relative_dirichlet_energy": relative_dirichlet_energy(x, edge_index, batch, num_graphs),
        "node_cosine": node_cosine(x, batch, num_graphs),
        "node_effective_rank": effective_rank(x),
        "graph_cosine": pairwise_cosine(pooled),
        "graph_effective_rank": effective_rank(pooled),
    }


@torch.no_grad()
def encoder_layer_states(encoder: nn.Module, batch) -> list[torch.Tensor]:
    """Atom states float [N, d_l] of each layer of any encoder, input side first.

    Encoders that define ``layer_states(batch)`` (D-MPNN, GINE) say it themselves. For the others
    (published encoders ported from their checkpoints), the output of the first module of each entry of
    ``encoder.layers`` is recorded with a forward hook at every call (a layer reused over depth counts once
    per call); outputs on directed edges [E, d] are summed into their target atoms; the final
    ``node_embeddings`` close the list.
    """
    if hasattr(encoder, "layer_states"):
        return [s.detach() for s in encoder.layer_states(batch)]
    num_nodes, num_edges = batch.x.size(0), batch.edge_index.size(1)
    recorded: list[torch.Tensor] = []

    def record(_module, _inputs, output):
        out = output[0] if isinstance(output, tuple) else output
        if not torch.is_tensor(out) or out.dim() != 2:
            return
        if out.size(0) == num_nodes:
            recorded.append(out.detach())
        elif out.size(0) == num_edges:
            recorded.append(
                scatter(out.detach(), batch.edge_index[1], dim=0, dim_size=num_nodes, reduce="sum")
            )

    firsts = [
        group[0] if isinstance(group, nn.ModuleList) else group for group in getattr(encoder, "layers", [])
    ]
    hooks = [m.register_forward_hook(record) for m in firsts]
    try:
        final = encoder.node_embeddings(batch).detach()
    finally:
        for h in hooks:
            h.remove()
    return [*recorded, final]
