"""Target standardization fitted on the training split (NaN-aware)."""

from __future__ import annotations

import torch


class TargetScaler(torch.nn.Module):
    """y_scaled = (y - mean) / std per target. Buffers mean/std [T] travel in checkpoints."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @classmethod
    def fit(cls, y: torch.Tensor) -> TargetScaler:
        """Fit on y float [R, T] with NaN for missing; a constant or empty target gets std 1."""
        mean = torch.nanmean(y, dim=0).nan_to_num(0.0)
        var = torch.nanmean((y - mean) ** 2, dim=0).nan_to_num(1.0)
        std = var.sqrt()
        return cls(mean, torch.where(std > 1e-8, std, torch.ones_like(std)))

    @classmethod
    def identity(cls, num_targets: int) -> TargetScaler:
        return cls(torch.zeros(num_targets), torch.ones(num_targets))

    def transform(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean
