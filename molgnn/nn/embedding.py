"""Sum of per-column embeddings for integer feature matrices (atoms or bonds)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureEmbedding(nn.Module):
    """Embed long [*, F] feature rows as the sum of F embeddings: -> float [*, dim]."""

    def __init__(self, vocab_sizes: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(size, dim) for size in vocab_sizes)
        for table in self.tables:
            nn.init.xavier_uniform_(table.weight)
        starts = torch.tensor([0, *vocab_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("starts", starts, persistent=False)  # column i's rows in the joined table

    def forward(self, features: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """long [*, F] -> float [*, dim], or [*, width] with zero columns after ``dim`` (a wider compute
        width, see ``molgnn.nn.dmpnn.compute_width``)."""
        # one embedding_bag over the joined tables: one kernel, not F lookups and F - 1 additions
        joined = torch.cat([table.weight for table in self.tables])
        if width is not None and width > joined.size(1):
            joined = F.pad(joined, (0, width - joined.size(1)))
        return F.embedding_bag(features + self.starts, joined, mode="sum")
