"""L2-SP (Li, Grandvalet & Davoine, ICML 2018, "Explicit inductive bias for transfer learning with
convolutional networks"): during fine-tuning, penalize the encoder's distance from its starting point
instead of from zero, so it keeps what pretraining put there unless the labels pay for moving away.

    penalty = strength / 2 * sum_p ||p - p_start||^2     over every encoder parameter that trains

``p_start`` is a copy of the weights taken when the task is built: the pretrained weights for
``encoder=pretrained``, the random initialization otherwise (same hyperparameters for both, as the
benchmark asks). The copy is not saved in checkpoints: it is the encoder header's weights, and a resumed
run rebuilds it from the same ``encoder.path``.
"""

from __future__ import annotations

import torch
from torch import nn

from molgnn.errors import MolgnnError


class WeightAnchor(nn.Module):
    """Holds a frozen copy of ``encoder``'s parameters; ``penalty(encoder)`` -> float scalar tensor."""

    def __init__(self, encoder: nn.Module, strength: float):
        super().__init__()
        if strength < 0:
            raise MolgnnError(f"task.l2sp={strength}: must be >= 0 (0 turns it off)")
        self.strength = float(strength)
        self.names = [name for name, _ in encoder.named_parameters()]
        for i, (_, p) in enumerate(encoder.named_parameters()):
            self.register_buffer(f"start_{i}", p.detach().clone(), persistent=False)  # moves with .to(device)

    def penalty(self, encoder: nn.Module) -> torch.Tensor:
        """strength / 2 * squared distance of the trainable encoder parameters from their start."""
        params = dict(encoder.named_parameters())
        terms = [
            (params[n] - getattr(self, f"start_{i}")).pow(2).sum()
            for i, n in enumerate(self.names)
            if params[n].requires_grad
        ]
        if not terms:
            return torch.zeros((), device=next(iter(params.values())).device)
        return 0.5 * self.strength * torch.stack(terms).sum()
