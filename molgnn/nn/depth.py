"""Depth-robust building blocks shared by the D-MPNN and GINE encoders (``encoder.*`` switches).

- ``residual``: h_{l+1} = h_l + f(h_l) (He et al. 2016; Li et al. 2019 "DeepGCNs").
- ``jk``: jumping knowledge (Xu et al. 2018): the output sees every layer's states (``cat`` / ``max``).
- ``virtual_node``: one extra node per molecule connected to every atom (Gilmer et al. 2017; OGB's
  GIN-virtual): after each layer it sums the atom states and broadcasts an update back.
- ``pair_norm``: PairNorm (Zhao & Akoglu 2020, PyG's ``PairNorm``): per molecule, centre the states and
  rescale them to a fixed mean norm, so they cannot all converge to one vector. ``true`` (or ``every``)
  after every step; ``last`` after the last normalized step only (D-MPNN: its last message-passing
  step; GINE: the layer before its last), to test whether a deep model keeps PairNorm's shallow gain
  with its own dynamics left unnormalized (on Biogen solubility it does not: bench/results/depth.md).
- ``drop_edge``: DropEdge (Rong et al. 2020): during training each bond is removed with this probability
  (both directions together), a different random graph per step.
- ``global_attention``: GPS-style global self-attention (Rampasek et al. 2022, "GPS"): each layer adds, to
  its local message passing, multi-head attention among all atoms of the molecule, so any atom reaches any
  other in one step. The value is the number of heads (0: off).
- ``gate``: a highway gate on each step (Srivastava et al. 2015; the GRU-style update of gated graph
  networks, Li et al. 2016): h_{l+1} = (1 - z) h_l + z f(h_l), z = sigmoid(W_z [h_l || f(h_l)] + b_z), so
  every state learns how much of itself to carry forward. b_z starts at -1 (carry-biased, as the highway
  paper advises for deep stacks). Replaces ``residual`` (both at once is refused).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn.norm import PairNorm
from torch_geometric.utils import scatter, to_dense_batch

JK_MODES = ("last", "cat", "max")


def check_depth_args(
    num_layers: int,
    jk: str,
    drop_edge: float,
    global_attention: int = 0,
    hidden_dim: int = 1,
    gate: bool = False,
    residual: bool = False,
) -> None:
    """Refuse values that would build a broken encoder (each message names the config key)."""
    if gate and residual:
        raise ValueError(
            "encoder.gate and encoder.residual are two ways to carry a state forward; set "
            "encoder.residual=false to use the gate"
        )
    if num_layers < 1:
        raise ValueError(f"encoder.num_layers must be at least 1, got {num_layers}")
    if jk not in JK_MODES:
        raise ValueError(f"encoder.jk must be one of {JK_MODES}, got {jk!r}")
    if not 0.0 <= drop_edge < 1.0:
        raise ValueError(f"encoder.drop_edge must be in [0, 1), got {drop_edge}")
    if global_attention < 0 or (global_attention and hidden_dim % global_attention):
        raise ValueError(
            f"encoder.global_attention (heads) must be 0 or divide encoder.hidden_dim={hidden_dim}, "
            f"got {global_attention}"
        )


def drop_bonds(
    edge_index: torch.Tensor, edge_attr: torch.Tensor, p: float, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """DropEdge on interleaved directed edges (bond k = edges 2k, 2k+1): keeps or drops both directions of a
    bond together, so the kept edges stay interleaved. long [2, E], [E, Fb] -> long [2, E'], [E', Fb]."""
    if not training or p <= 0.0 or edge_index.size(1) == 0:
        return edge_index, edge_attr
    keep_bond = torch.rand(edge_index.size(1) // 2, device=edge_index.device) >= p
    keep = keep_bond.repeat_interleave(2)
    return edge_index[:, keep], edge_attr[keep]


class VirtualNode(nn.Module):
    """A per-molecule global state g float [B, d]: starts at zero and after each layer becomes
    g + MLP(sum of the molecule's atom states + g) (OGB GIN-virtual's update, residual form)."""

    def __init__(self, dim: int, num_updates: int):
        super().__init__()
        self.updates = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU(), nn.Linear(dim, dim))
            for _ in range(num_updates)
        )

    def initial(self, num_graphs: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(num_graphs, like.size(-1))

    def update(
        self, g: torch.Tensor, atom_states: torch.Tensor, batch: torch.Tensor, step: int
    ) -> torch.Tensor:
        """g float [B, d], atom_states float [N, d], batch long [N] -> new g float [B, d]."""
        pooled = scatter(atom_states, batch, dim=0, dim_size=g.size(0), reduce="sum")
        return g + self.updates[min(step, len(self.updates) - 1)](pooled + g)


PAIR_NORM_MODES = {False: "off", True: "every", "off": "off", "every": "every", "last": "last"}


def pair_norm_mode(value: bool | str) -> str:
    """``encoder.pair_norm`` (false / true / "every" / "last") -> "off", "every" or "last"."""
    mode = PAIR_NORM_MODES.get(value) if isinstance(value, (bool, str)) else None
    if mode is None:
        raise ValueError(f"encoder.pair_norm must be false, true, every or last; got {value!r}")
    return mode


def make_pair_norm(value: bool | str) -> nn.Module | None:
    """PyG's PairNorm (scale 1) or None (``encoder.pair_norm`` false / "off")."""
    return PairNorm(scale=1.0) if pair_norm_mode(value) != "off" else None


class GlobalAttention(nn.Module):
    """Self-attention among the atoms of each molecule (GPS's global branch, pre-LayerNorm; PyTorch's
    ``MultiheadAttention`` on PyG's ``to_dense_batch`` padding). x float [N, d], batch long [N] -> float [N, d]."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        dense, real = to_dense_batch(self.norm(x), batch, batch_size=num_graphs)  # [B, n_max, d], [B, n_max]
        out, _ = self.attention(dense, dense, dense, key_padding_mask=~real, need_weights=False)
        return out[real]


def make_global_attention(heads: int, dim: int, dropout: float, count: int) -> nn.ModuleList | None:
    """``count`` attention blocks (one per layer, or one shared over depth) or None when ``heads`` is 0."""
    return nn.ModuleList(GlobalAttention(dim, heads, dropout) for _ in range(count)) if heads else None


GATE_BIAS = -1.0  # sigmoid(-1) = 0.27: each step starts by keeping 73% of the state it is given


class Gate(nn.Module):
    """Highway gate: (h float [M, d], new float [M, d]) -> (1 - z) h + z new, z = sigmoid(W [h || new] + b)
    float [M, d]. Inputs wider than ``dim`` (zero-padded columns) are gated on their first ``dim`` columns
    and keep zeros in the rest."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(2 * dim, dim)
        nn.init.constant_(self.linear.bias, GATE_BIAS)

    def forward(self, h: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        d = self.linear.out_features
        z = torch.sigmoid(self.linear(torch.cat([h[:, :d], new[:, :d]], dim=1)))
        if h.size(1) > d:
            z = torch.nn.functional.pad(z, [0, h.size(1) - d])  # padded columns: 0 * new + 1 * 0
        return h + z * (new - h)


def make_gates(on: bool, dim: int, count: int) -> nn.ModuleList | None:
    """``count`` gates (one per layer, or one shared over depth) or None when ``encoder.gate`` is off."""
    return nn.ModuleList(Gate(dim) for _ in range(count)) if on else None
