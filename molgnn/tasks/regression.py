"""Property regression on a (frozen or fine-tuned) encoder: one LightningModule, masked loss, metrics in
original units."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from molgnn.checkpoint import encoder_fingerprint, head_header, make_header
from molgnn.data.augment import view_batch
from molgnn.data.scaler import TargetScaler
from molgnn.tasks.anchor import WeightAnchor
from molgnn.tasks.embeddings import EmbeddingBatch
from molgnn.tasks.freezing import make_freezer
from molgnn.tasks.noisy_nodes import make_noisy_nodes
from molgnn.uncertainty.settings import UncertaintySettings


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the non-NaN entries of target [B, T]."""
    mask = ~torch.isnan(target)
    diff = (pred - torch.nan_to_num(target)) * mask
    return (diff**2).sum() / mask.sum().clamp(min=1)


def masked_beta_nll(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """beta-NLL (Seitzer et al., ICLR 2022) over the non-NaN entries of target [B, T]: the Gaussian NLL of
    each entry weighted by its (detached) variance ** beta, so a large predicted variance cannot buy a
    badly fitted mean (beta = 0: plain Gaussian NLL)."""
    mask = ~torch.isnan(target)
    nll = 0.5 * (var.log() + (mean - torch.nan_to_num(target)) ** 2 / var)
    if beta:
        nll = nll * var.detach() ** beta
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _metrics(stage: str) -> MetricCollection:
    return MetricCollection(
        {"rmse": MeanSquaredError(squared=False), "mae": MeanAbsoluteError(), "r2": R2Score()},
        prefix=f"{stage}/",
    )


class RegressionTask(L.LightningModule):
    """encoder(batch) -> h [B, d] -> head(h) -> y_hat [B, T] (scaled). Loss: masked MSE in scaled units.

    ``freeze_encoder``: encoder in eval mode with no gradients; the optimizer sees only the head.
    ``encoder_lr_ratio``: encoder learning rate = ratio x head learning rate when fine-tuning.
    ``freeze_layers`` / ``unfreeze_every``: partial freezing and gradual unfreezing (molgnn.tasks.freezing).
    ``precompute_embeddings`` (frozen encoder only): train the head on embeddings computed once
    (molgnn.tasks.embeddings); batches are then ``EmbeddingBatch``.
    ``descriptor_scaler``: when given, the head sees [h || batch.desc] (standardized RDKit descriptors,
    float [B, D]); the header records the scaler (names + statistics) so prediction can recompute them.
    ``l2sp``: strength of the L2-SP penalty pulling the encoder towards its starting weights
    (molgnn.tasks.anchor), added to the training loss; 0 = off.
    ``uncertainty``: ``UncertaintySettings``; with method ``mve`` the head outputs [B, 2T] (mean, raw
    variance), the loss is beta-NLL and ``predict_step`` adds the predicted std.
    ``monitor``: the metric the scheduler watches (the run's ``monitor`` key).
    ``consistency``: with paired training batches (``graph.pairs``: each molecule also under another graph
    construction, ``batch.view_*``), both graphs are supervised (mean of the two losses) and this weight times
    the mean squared difference of their scaled predictions is added; unpaired batches ignore it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        scaler: TargetScaler,
        target_names: list[str],
        optimizer: Callable,
        scheduler: Callable | None = None,
        freeze_encoder: bool = False,
        encoder_lr_ratio: float = 1.0,
        name: str = "property",
        descriptor_scaler=None,
        freeze_layers: int | None = None,
        unfreeze_every: int | None = None,
        precompute_embeddings: bool = False,
        l2sp: float = 0.0,
        uncertainty: UncertaintySettings | None = None,
        monitor: str = "val/rmse",
        consistency: float = 0.0,
        noisy_nodes: float = 0.0,
        noisy_nodes_rate: float = 0.15,
    ):
        super().__init__()
        self.encoder, self.head, self.scaler = encoder, head, scaler
        self.target_names, self.name = list(target_names), name
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.freeze_encoder, self.encoder_lr_ratio = freeze_encoder, encoder_lr_ratio
        self.descriptor_scaler = descriptor_scaler
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        self.precompute_embeddings = precompute_embeddings
        self.freezer = make_freezer(
            encoder, freeze_encoder, freeze_layers, unfreeze_every, precompute_embeddings
        )
        self.anchor = WeightAnchor(encoder, l2sp) if l2sp and not freeze_encoder else None
        self.uncertainty, self.monitor = uncertainty or UncertaintySettings(), monitor
        self.consistency = float(consistency)
        self.noisy_nodes = make_noisy_nodes(encoder, noisy_nodes, noisy_nodes_rate, freeze_encoder)
        self.metrics = nn.ModuleDict({f"{s}_": _metrics(s) for s in ("train", "val", "test")})

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # frozen means frozen: batch-norm statistics and dropout too
        if self.freezer is not None:
            self.freezer.set_modes()  # frozen layers too
        return self

    def on_train_epoch_start(self):
        """Lightning (2.x) never calls ``train()`` during fit; it only restores per-module modes after
        validation. So frozen parts are put in eval mode here, at the start of every training epoch."""
        if self.freeze_encoder:
            self.encoder.eval()
        if self.freezer is not None:
            self.freezer.apply(self.current_epoch, self.training)

    def embed(self, batch) -> torch.Tensor:
        """Graph embeddings float [B, d] (precomputed ones for an ``EmbeddingBatch``)."""
        return batch.h if isinstance(batch, EmbeddingBatch) else self.encoder(batch)

    def features(self, batch, h: torch.Tensor | None = None) -> torch.Tensor:
        """Head input: encoder(batch) float [B, d], with batch.desc [B, D] appended when descriptors are on."""
        h = self.embed(batch) if h is None else h
        return torch.cat([h, batch.desc.to(h.dtype)], dim=1) if self.descriptor_scaler is not None else h

    def head_outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Head on features -> (mean [B, T], variance [B, T] or None), both in scaled units."""
        out = self.head(features)
        if not self.uncertainty.mve:
            return out, None
        mean, raw = out.chunk(2, dim=1)
        return mean, nn.functional.softplus(raw) + 1e-6

    def forward(self, batch) -> torch.Tensor:
        """Predictions in original units, float [B, T]."""
        return self.scaler.inverse(self.head_outputs(self.features(batch))[0])

    def _loss(self, scaled: torch.Tensor, var: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        target = self.scaler.transform(y)
        return (
            masked_mse(scaled, target)
            if var is None
            else masked_beta_nll(scaled, var, target, self.uncertainty.beta)
        )

    def _paired_loss(self, batch, scaled: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """Both constructions of each molecule supervised, plus ``consistency`` x their squared difference."""
        view = view_batch(batch)
        if self.descriptor_scaler is not None:
            view.desc = batch.desc
        view_scaled, view_var = self.head_outputs(self.features(view))
        agreement = (scaled - view_scaled).pow(2).mean()
        self.log("train/consistency", agreement, batch_size=batch.num_graphs, on_step=False, on_epoch=True)
        return 0.5 * (loss + self._loss(view_scaled, view_var, batch.y)) + self.consistency * agreement

    def _step(self, batch, stage: str) -> torch.Tensor:
        scaled, var = self.head_outputs(self.features(batch))
        loss = self._loss(scaled, var, batch.y)
        if stage == "train" and getattr(batch, "view_x", None) is not None:
            loss = self._paired_loss(batch, scaled, loss)
        mask = ~torch.isnan(batch.y)
        pred = self.scaler.inverse(scaled.detach())
        self.metrics[f"{stage}_"].update(pred[mask], batch.y[mask])
        self.log(
            f"{stage}/loss",
            loss,
            batch_size=batch.num_graphs,
            on_step=False,
            on_epoch=True,
            prog_bar=stage != "test",
        )
        return loss

    def _log_metrics(self, stage: str) -> None:
        self.log_dict(self.metrics[f"{stage}_"].compute(), prog_bar=stage == "val")
        self.metrics[f"{stage}_"].reset()

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if self.noisy_nodes is not None:
            denoise, logs = self.noisy_nodes(self.encoder, batch)
            size = batch.num_graphs
            self.log("train/noisy_nodes", denoise, batch_size=size, on_step=False, on_epoch=True)
            self.log("train/noisy_nodes_acc", logs["atom_acc"], batch_size=size, on_step=False, on_epoch=True)
            loss = loss + denoise
        if self.anchor is None:
            return loss
        penalty = self.anchor.penalty(self.encoder)
        self.log("train/l2sp", penalty, batch_size=batch.num_graphs, on_step=False, on_epoch=True)
        return loss + penalty

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_epoch_end(self):
        self._log_metrics("train")

    def on_validation_epoch_end(self):
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")

    def predict_step(self, batch, batch_idx):
        return {"row": batch.row, "pred": self(batch)}

    def configure_optimizers(self):
        head_params = [p for p in self.head.parameters() if p.requires_grad]
        enc_params = (
            [p for p in self.encoder.parameters() if p.requires_grad]
            if self.freezer is None
            else self.freezer.optimizer_params()
        )
        groups = [{"params": head_params, "name": "head"}]
        if enc_params:
            groups.append({"params": enc_params, "name": "encoder", "lr_ratio": self.encoder_lr_ratio})
        optimizer = self.optimizer_factory(params=groups)
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.get("lr_ratio", 1.0)
            group["initial_lr"] = group["lr"]
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler_factory(optimizer=optimizer),
                "monitor": self.monitor,
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A calibrated checkpoint (``attach_calibration``) also holds the applicability-domain index
        (``domain.*``), which is not a module of the task: dropped here, so training can resume from it (the
        run builds the index again after training)."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("domain.")]:
            del state[key]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        head = head_header(
            self.name, self.head, self.target_names, self.scaler, encoder_fingerprint(self.encoder)
        )
        if self.uncertainty.mve:
            head["variance"] = True  # the head's output is [mean (T), raw variance (T)]
        if self.descriptor_scaler is not None:
            head["descriptors"] = self.descriptor_scaler.to_dict()
        datamodule = getattr(self._trainer, "datamodule", None)
        augment = getattr(datamodule, "augment", None)
        if augment:  # constructions mixed into training (graph.augment); prediction uses the spec's own
            head["graph_augment"] = list(augment)
        if getattr(datamodule, "augment_pairs", False):
            head["graph_pairs"] = {"consistency": self.consistency}
        checkpoint["molgnn"] = make_header(
            "model", self.encoder, heads=[head], pretraining=self.encoder.pretraining
        )
