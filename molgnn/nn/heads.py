"""Property heads: embeddings -> predictions (in scaled units)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MLP


class MLPHead(nn.Module):
    """float [B, in_dim] -> float [B, out_dim] through ``num_layers`` linear layers (ReLU between).

    ``input_norm``: LayerNorm the input first, so the head sees the same scale whether the embedding comes
    from a random-init encoder or a pretrained one (whose embeddings can be 10-20x larger). It also removes
    the embedding's magnitude, which carries molecule size under a sum readout (worse on ESOL).
    """

    family = "mlp"

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 300,
        num_layers: int = 2,
        dropout: float = 0.0,
        input_norm: bool = False,
    ):
        super().__init__()
        self.args = dict(
            in_dim=in_dim,
            out_dim=out_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            input_norm=input_norm,
        )
        self.norm = nn.LayerNorm(in_dim) if input_norm else nn.Identity()
        channels = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.mlp = MLP(channels, dropout=dropout, norm=None, act="relu")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(h))
