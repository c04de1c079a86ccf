"""Sum of per-column embeddings for integer feature matrices (atoms or bonds)."""

from __future__ import annotations

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """Embed long [*, F] feature rows as the sum of F embeddings: -> float [*, dim]."""

    def __init__(self, vocab_sizes: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(size, dim) for size in vocab_sizes)
        for table in self.tables:
            nn.init.xavier_uniform_(table.weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.tables[0](features[:, 0])
        for i in range(1, len(self.tables)):
            out = out + self.tables[i](features[:, i])
        return out
