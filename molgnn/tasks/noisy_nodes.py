"""Noisy nodes for supervised training: a node-level denoising loss beside the property loss.

Godwin et al. 2021 ("Simple GNN regularisation for 3D molecular property prediction and beyond") train
message-passing networks 100 steps deep by corrupting the input and adding a loss that asks every node to
recover its clean features; the node-level target keeps the atoms of a deep network distinct. On 2D molecular
graphs the corruption is atom masking: ``rate`` of the atoms (and their bonds) get their unknown buckets and
a linear head on the atom states predicts each masked atom's element. The masking objective is the one
pretraining uses (``molgnn.tasks.pretrain.objectives.AttributeMasking``), applied to a masked copy of the
training batch, so the property head always sees the clean molecule; prediction is unchanged. The head lives
in the task, never in the encoder: checkpoints and exported encoders carry none of it.
"""

from __future__ import annotations

import torch
from torch import nn

from molgnn.errors import MolgnnError
from molgnn.tasks.pretrain.objectives import AttributeMasking, PretrainContext, node_width


class NoisyNodes(nn.Module):
    """``weight`` x masked-atom cross-entropy on a corrupted copy of the batch; ``forward(encoder, batch)``
    -> (weighted loss scalar, {"atom_acc": accuracy on the masked atoms})."""

    def __init__(self, encoder: nn.Module, weight: float, rate: float = 0.15):
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise MolgnnError(f"task.noisy_nodes_rate must be in (0, 1], got {rate}")
        self.weight = float(weight)
        context = PretrainContext(dim=encoder.out_dim, spec=encoder.spec, node_dim=node_width(encoder))
        try:
            self.masking = AttributeMasking(context, mask_rate=rate, predict_bonds=False)
        except ValueError as err:  # a featurizer without an element feature (some imported encoders)
            raise MolgnnError(f"task.noisy_nodes: {err}") from None

    def forward(self, encoder: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, logs = self.masking(encoder, batch)
        return self.weight * loss, logs


def make_noisy_nodes(encoder: nn.Module, weight: float, rate: float, frozen: bool) -> NoisyNodes | None:
    """The auxiliary loss for ``task.noisy_nodes=weight`` (0: none); a frozen encoder cannot learn from it."""
    if weight < 0:
        raise MolgnnError(f"task.noisy_nodes must be >= 0 (0 = off), got {weight}")
    if weight == 0:
        return None
    if frozen:
        raise MolgnnError(
            "task.noisy_nodes trains the encoder's atom states, but task.freeze_encoder=true; "
            "turn one of them off"
        )
    return NoisyNodes(encoder, weight, rate)
