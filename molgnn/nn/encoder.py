"""The encoder contract: every encoder molgnn builds or imports (D-MPNN, GINE, Hu et al. 2020, MolCLR, MiniMol,
Chemprop) is an ``Encoder``, so tasks, checkpoints, freezing, diagnostics and embedding export rely on these
members and nothing else.

    family: str                class attribute; the name in ``molgnn.nn.ENCODER_FAMILIES`` and in headers
    spec: FeaturizerSpec        the featurization it reads (travels in every checkpoint)
    args: dict                  construction arguments (saved in the header; ``cls(spec, **args)`` rebuilds it)
    pretraining: dict | None    provenance set by the loaders (``None``: built from scratch)
    out_dim: int                width d of ``embed``
    layers: list[nn.Module]     parameter groups in order of depth (freezing, diagnostics hooks)
    embeddings: list[nn.Module] input embeddings (frozen with any frozen layer)
    node_embeddings(batch)      -> float [N, d_node]
    embed(batch) / forward      -> float [B, out_dim]
    layer_states(batch)         optional: atom states of every layer (``molgnn.nn.oversmoothing``)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn.embedding import FeatureEmbedding


class Encoder(nn.Module):
    """Base class of every encoder (see the module docstring for the contract)."""

    family: ClassVar[str] = ""
    spec: FeaturizerSpec
    args: dict
    pretraining: dict | None = None

    @property
    def out_dim(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define out_dim")

    @property
    def layers(self) -> list[nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} must define layers")

    @property
    def embeddings(self) -> list[nn.Module]:
        """Default: the direct embedding children outside ``layers``."""
        in_layers = {id(m) for layer in self.layers for m in layer.modules()}
        return [
            m
            for m in self.children()
            if isinstance(m, nn.Embedding | FeatureEmbedding) and id(m) not in in_layers
        ]

    def node_embeddings(self, batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define node_embeddings")

    def embed(self, batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define embed")

    def forward(self, batch) -> torch.Tensor:
        return self.embed(batch)
