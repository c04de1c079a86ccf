"""Target scaling fitted on the training split (NaN-aware): an optional monotone transform per target
(``data.target_transform``, molgnn.data.target_transform), then standardization."""

from __future__ import annotations

import numpy as np
import torch

from molgnn.data import target_transform as tt


class TargetScaler(torch.nn.Module):
    """y_scaled = (t(y) - mean) / std per target. Buffers mean/std [T] travel in checkpoints (state dict and
    header); ``transforms`` (one record per target, molgnn.data.target_transform; None = no transform) in the
    header only. With no transform the arithmetic is the plain tensor one, on the tensor's device."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, transforms: list[dict] | None = None):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        if transforms is not None and all(t["kind"] == "none" for t in transforms):
            transforms = None
        self.transforms = transforms

    @classmethod
    def fit(cls, y: torch.Tensor, transforms: list[dict] | None = None) -> TargetScaler:
        """Fit on y float [R, T] with NaN for missing (``transforms``: already fitted on the same rows); a
        constant or empty target gets std 1."""
        y = _apply(transforms, y, tt.forward)
        mean = torch.nanmean(y, dim=0).nan_to_num(0.0)
        var = torch.nanmean((y - mean) ** 2, dim=0).nan_to_num(1.0)
        std = var.sqrt()
        return cls(mean, torch.where(std > 1e-8, std, torch.ones_like(std)), transforms)

    @classmethod
    def identity(cls, num_targets: int) -> TargetScaler:
        return cls(torch.zeros(num_targets), torch.ones(num_targets))

    @classmethod
    def from_dict(cls, d: dict) -> TargetScaler:
        """From a header's ``scaler`` entry ({"mean", "std"[, "transforms"]}; files without transforms load
        as before)."""
        mean, std = (torch.tensor(d[k], dtype=torch.float32) for k in ("mean", "std"))
        return cls(mean, std, d.get("transforms"))

    def transform(self, y: torch.Tensor) -> torch.Tensor:
        return (_apply(self.transforms, y, tt.forward) - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return _apply(self.transforms, y * self.std + self.mean, tt.inverse)


def _apply(transforms: list[dict] | None, y: torch.Tensor, fn) -> torch.Tensor:
    """fn(record_j, column j) for every column of y [..., T] (float64 numpy); y itself when no transform."""
    if transforms is None:
        return y
    arr = y.detach().cpu().double().numpy()
    out = np.stack([fn(rec, arr[..., j]) for j, rec in enumerate(transforms)], axis=-1)
    return torch.from_numpy(out).to(device=y.device, dtype=y.dtype)
