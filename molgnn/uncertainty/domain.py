"""Applicability domain: how far a molecule is from the training set, and whether the model's error is
still what it was in distribution at that distance.

Two measures: the mean Euclidean distance from a molecule's embedding to its k nearest training
embeddings (the model's own view of similarity), and the largest Tanimoto similarity of its Morgan
fingerprint (radius 2, 2048 bits) to a training molecule (the chemist's view). The embedding distance is
calibrated on the validation set: an isotonic (non-decreasing) fit of |error| against distance, and a
threshold, the largest distance at which the fitted error is within ``tolerance`` of the in-distribution
error (the mean |error| of the nearest half of the validation molecules). ``domain_score`` = distance /
threshold, so ``in_domain`` = score <= 1 whatever the units.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from molgnn.featurize.fingerprints import FP_BITS, morgan_bits  # computed in the featurize layer (the engine)

__all__ = ["FP_BITS", "DomainIndex", "fit_threshold", "morgan_bits"]


class DomainIndex(nn.Module):
    """Training-set reference for domain scores. Buffers (they travel in the checkpoint's state dict under
    ``domain.``): ``embeddings`` float16 [N, d], ``fingerprints`` uint8 [N, FP_BITS / 8]."""

    def __init__(self, embeddings: torch.Tensor, fingerprints: torch.Tensor, k: int = 5):
        super().__init__()
        self.k = k
        self.register_buffer("embeddings", embeddings.to(torch.float16))
        self.register_buffer("fingerprints", fingerprints.to(torch.uint8))
        self._bits: torch.Tensor | None = None  # unpacked float fingerprints, made on first use

    @classmethod
    def like(cls, state: dict, k: int) -> DomainIndex:
        """An index shaped like a stored one (``state``: its tensors), to be filled by a strict load."""
        emb = state.get("embeddings", torch.zeros(0, 1))
        fps = state.get("fingerprints", torch.zeros(0, FP_BITS // 8, dtype=torch.uint8))
        return cls(torch.zeros_like(emb), torch.zeros_like(fps), k)

    @torch.no_grad()
    def distance(self, h: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Embeddings h float [B, d] -> mean distance to the k nearest training embeddings, float [B].
        In float64: cdist's GEMM form (|a|^2 + |b|^2 - 2 a.b) loses ~1e-4 of a small distance in float32,
        enough to move a score between processes or batch sizes."""
        ref = self.embeddings
        k = min(self.k, ref.size(0))
        best = torch.full((h.size(0), k), float("inf"), device=h.device, dtype=torch.float64)
        for a in range(0, ref.size(0), chunk):
            d = torch.cdist(h.double(), ref[a : a + chunk].double())
            best = torch.cat([best, d], dim=1).topk(k, dim=1, largest=False).values
        return best.mean(dim=1).float()

    @torch.no_grad()
    def similarity(self, fp: torch.Tensor) -> torch.Tensor:
        """Packed fingerprints uint8 [B, FP_BITS/8] -> largest Tanimoto similarity to a training molecule [B]."""
        if self._bits is None:  # float {0, 1} [FP_BITS, N] and the bit counts [N], made on first use
            bits = _unpack(self.fingerprints)
            self._bits, self._counts = bits.T.contiguous(), bits.sum(1)
        q = _unpack(fp.to(self.fingerprints.device))
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is exact (0/1 sums)
            warnings.simplefilter("ignore", UserWarning)
            # ~2% of the bits are set: a sparse query makes the product 3x faster than a dense GEMM
            inter = q.to_sparse_csr() @ self._bits if q.device.type == "cpu" else q @ self._bits
        union = q.sum(1, keepdim=True) + self._counts - inter
        return (inter / union.clamp(min=1)).max(dim=1).values


def _unpack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [N, F/8] -> float32 {0, 1} [N, F] (bit order as numpy's packbits)."""
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    return ((packed.unsqueeze(-1) >> shifts) & 1).reshape(packed.size(0), -1).float()


def fit_threshold(distance: np.ndarray, abs_err: np.ndarray, tolerance: float) -> dict:
    """Calibrate the embedding distance on validation molecules: distance [M], |error| [M] (standardized
    units, NaN = missing). Returns {"threshold", "in_domain_error", "tolerance", "knots_x", "knots_y"}
    (the isotonic fit of error against distance, for ``expected_error``)."""
    ok = np.isfinite(distance) & np.isfinite(abs_err)
    x, e = np.asarray(distance)[ok], np.asarray(abs_err)[ok]
    if len(x) < 4:
        return {
            "threshold": float(np.max(x)) if len(x) else float("inf"),
            "in_domain_error": float("nan"),
            "tolerance": tolerance,
            "knots_x": [],
            "knots_y": [],
        }
    from sklearn.isotonic import IsotonicRegression  # imported when fitted: keeps prediction start-up short

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, e)
    e0 = float(e[x <= np.median(x)].mean())
    grid = np.sort(x)
    fitted = iso.predict(grid)
    above = np.nonzero(fitted > (1 + tolerance) * e0)[0]
    threshold = float(
        grid[above[0] - 1] if len(above) and above[0] > 0 else grid[0] if len(above) else grid[-1]
    )
    return {
        "threshold": max(threshold, 1e-8),
        "in_domain_error": e0,
        "tolerance": tolerance,
        "knots_x": iso.X_thresholds_.tolist(),
        "knots_y": iso.y_thresholds_.tolist(),
    }
