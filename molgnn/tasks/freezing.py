"""Which encoder parts train: freeze the input embeddings + the first k message-passing layers
(``task.freeze_layers=k``), and/or unfreeze gradually (``task.unfreeze_every=n``): the head alone for n
epochs, then every n epochs one more part of the encoder from the top down (the parts above the layers and
the last layer, then each layer below it, then the embeddings).

A frozen part has ``requires_grad=False`` and stays in eval mode (batch-norm statistics and dropout fixed).
The optimizer is built once with every parameter that will ever train: Adam and SGD skip a parameter whose
gradient is ``None``, so a frozen parameter does not move (weight decay included) until it is unfrozen.
"""

from __future__ import annotations

from torch import nn

from molgnn.errors import MolgnnError

Part = list  # modules and loose parameters that freeze together


def encoder_parts(encoder: nn.Module) -> tuple[Part, list[Part], Part]:
    """Split an encoder into (embeddings, layers, rest).

    embeddings: ``encoder.embeddings`` (``molgnn.nn.encoder.Encoder``: by default its direct embedding
    children outside ``encoder.layers``), plus the encoder's own loose parameters; layers: ``encoder.layers``
    in order; rest: every other direct child (readout, projections, final norm, dropout).
    """
    layers = [[layer] for layer in encoder.layers]
    in_layers = {id(m) for part in layers for m in part[0].modules()}
    embeddings = encoder.embeddings
    taken = in_layers | {id(m) for e in embeddings for m in e.modules()}
    rest = [m for m in encoder.children() if not any(id(x) in taken for x in m.modules())]
    return [*embeddings, *encoder.parameters(recurse=False)], layers, rest


def _params(part: Part):
    for item in part:
        yield from ([item] if isinstance(item, nn.Parameter) else item.parameters())


class EncoderFreezer:
    """Frozen parts of an encoder as a function of the epoch.

    ``freeze_layers``: None = nothing fixed; k = embeddings + layers[:k] never train.
    ``unfreeze_every``: None = no schedule; n = everything else starts frozen and one part (top first)
    unfreezes every n epochs.
    """

    def __init__(
        self, encoder: nn.Module, freeze_layers: int | None = None, unfreeze_every: int | None = None
    ):
        embeddings, layers, rest = encoder_parts(encoder)
        if freeze_layers is not None and not 0 <= freeze_layers <= len(layers):
            raise MolgnnError(
                f"task.freeze_layers={freeze_layers}: the {encoder.family} encoder has "
                f"{len(layers)} message-passing layers (use 0..{len(layers)})"
            )
        if unfreeze_every is not None and unfreeze_every < 1:
            raise MolgnnError(
                f"task.unfreeze_every={unfreeze_every}: must be a number of epochs >= 1 (or null)"
            )
        self.encoder, self.unfreeze_every = encoder, unfreeze_every
        self.base_trainable = {id(p) for p in encoder.parameters() if p.requires_grad}
        k = freeze_layers
        self.fixed: Part = [] if k is None else [*embeddings, *(m for part in layers[:k] for m in part)]
        movable = layers[k or 0 :]
        top = [*rest, *(movable[-1] if movable else [])]
        self.stages: list[Part] = [top, *reversed(movable[:-1])] + ([embeddings] if k is None else [])
        self.frozen: Part = []
        self.apply(0, training=False)

    def frozen_at(self, epoch: int) -> Part:
        """Parts frozen during ``epoch`` (0-based)."""
        if not self.unfreeze_every:
            return list(self.fixed)
        unfrozen = epoch // self.unfreeze_every
        return [*self.fixed, *(item for stage in self.stages[unfrozen:] for item in stage)]

    def apply(self, epoch: int, training: bool) -> None:
        """Set ``requires_grad`` and train/eval modes for ``epoch``."""
        frozen = self.frozen_at(epoch)
        frozen_ids = {id(p) for p in _params(frozen)}
        for p in self.encoder.parameters():
            p.requires_grad_(id(p) in self.base_trainable and id(p) not in frozen_ids)
        now = {id(m) for m in frozen}
        for m in self.frozen:
            if isinstance(m, nn.Module) and id(m) not in now:
                m.train(training)
        self.frozen = frozen
        self.set_modes()

    def set_modes(self) -> None:
        """Put every frozen module in eval mode (call after any ``.train()``)."""
        for m in self.frozen:
            if isinstance(m, nn.Module):
                m.eval()

    def optimizer_params(self) -> list[nn.Parameter]:
        """Encoder parameters that train at some epoch of the schedule."""
        fixed = {id(p) for p in _params(self.fixed)}
        return [p for p in self.encoder.parameters() if id(p) in self.base_trainable and id(p) not in fixed]

    @property
    def active(self) -> bool:
        return bool(self.fixed) or bool(self.unfreeze_every)


def make_freezer(
    encoder: nn.Module,
    freeze_encoder: bool,
    freeze_layers: int | None,
    unfreeze_every: int | None,
    precompute_embeddings: bool = False,
) -> EncoderFreezer | None:
    """Check the task's freezing options against each other; an ``EncoderFreezer`` when one is needed."""
    if precompute_embeddings and not freeze_encoder:
        raise MolgnnError(
            "task.precompute_embeddings=true needs task.freeze_encoder=true (embeddings of an "
            "encoder that trains change every step)"
        )
    if freeze_encoder and (freeze_layers is not None or unfreeze_every):
        raise MolgnnError(
            "task.freeze_encoder=true freezes the whole encoder; task.freeze_layers / "
            "task.unfreeze_every apply to fine-tuning (set task.freeze_encoder=false)"
        )
    if freeze_layers is None and not unfreeze_every:
        return None
    return EncoderFreezer(encoder, freeze_layers, unfreeze_every)
