"""PretrainTask: an encoder trained on a weighted sum of self-supervised objectives."""

from __future__ import annotations

from collections.abc import Callable

import math

import lightning as L
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from molgnn.checkpoint import make_header


class WarmupCosine(LRScheduler):
    """Linear warm-up over ``warmup_fraction`` of ``total_steps``, then cosine decay to ``final_ratio`` x lr.

    ``total_steps`` is left out of the saved state, so a run resumed with more epochs follows the schedule
    of its new length instead of failing like OneCycleLR.
    """

    def __init__(self, optimizer, total_steps: int, warmup_fraction: float = 0.05, final_ratio: float = 0.01):
        if not math.isfinite(total_steps):  # max_epochs=-1: only a TimeBudget callback can give the length
            total_steps = 10**9
        self.total_steps, self.warmup_fraction, self.final_ratio = (
            max(1, int(total_steps)),
            warmup_fraction,
            final_ratio,
        )
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        warmup = max(1, int(self.warmup_fraction * self.total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        return self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("total_steps", None)
        return state


class PretrainTask(L.LightningModule):
    """loss = sum_k weight_k * objective_k(encoder, batch). Logs ``{stage}/loss`` and ``{stage}/{name}/...``.

    ``objectives``: name -> module (holds its pretext head); ``weights``: name -> float. ``info``: corpus
    facts (primitives) written with the objectives into the checkpoint header's ``pretraining`` entry.
    Only ``encoder`` is exported; the objectives' heads stay in the Lightning checkpoint.
    """

    def __init__(
        self,
        encoder: nn.Module,
        objectives: dict[str, nn.Module],
        weights: dict[str, float],
        optimizer: Callable,
        scheduler: Callable | None = None,
        info: dict | None = None,
    ):
        super().__init__()
        if not objectives:
            raise ValueError("pretrain.objectives is empty: name at least one objective")
        self.encoder = encoder
        self.objectives = nn.ModuleDict(objectives)
        self.weights = {k: float(weights.get(k, 1.0)) for k in objectives}
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.info = dict(info or {})

    def _step(self, batch, stage: str) -> torch.Tensor:
        total = 0.0
        for name, objective in self.objectives.items():
            loss, logs = objective(self.encoder, batch)
            total = total + self.weights[name] * loss
            self.log(
                f"{stage}/{name}/loss",
                loss,
                batch_size=batch.num_graphs,
                on_step=stage == "train",
                on_epoch=True,
            )
            for key, value in logs.items():
                self.log(
                    f"{stage}/{name}/{key}", value, batch_size=batch.num_graphs, on_epoch=True, on_step=False
                )
        self.log(
            f"{stage}/loss",
            total,
            batch_size=batch.num_graphs,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            sync_dist=stage == "val",
        )  # val loss averaged over DDP ranks
        return total

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def pretraining_header(self) -> dict:
        """The ``pretraining`` entry of encoder headers: objectives, weights, corpus, progress."""
        objectives = [
            {"name": k, "class": type(m).__name__, "weight": self.weights[k]}
            for k, m in self.objectives.items()
        ]
        progress = (
            {"epochs": int(self.current_epoch), "steps": int(self.global_step)} if self._trainer else {}
        )
        return {"objectives": objectives, "corpus": self.info, **progress}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["molgnn"] = make_header("pretrain", self.encoder, pretraining=self.pretraining_header())
