"""Frozen-encoder training on precomputed embeddings (``task.precompute_embeddings=true``).

A frozen encoder (eval mode, no gradient) maps a molecule to the same vector every epoch, so the encoder
runs once over train/valid/test and the head trains on tensors: no graph collation and no message passing
per epoch. The task keeps its encoder, so checkpoints still carry encoder + head and predict from SMILES.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import lightning as L
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torch_geometric.loader import DataLoader as GraphLoader

from molgnn.errors import MolgnnError

log = logging.getLogger(__name__)


@dataclass
class EmbeddingBatch:
    """A batch of precomputed graph embeddings: h float [B, d], y float [B, T], row long [B]
    (+ desc float [B, D] when the data module adds descriptors)."""

    h: torch.Tensor
    y: torch.Tensor
    row: torch.Tensor
    desc: torch.Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return self.h.size(0)

    def to(self, device, non_blocking: bool = False) -> EmbeddingBatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return EmbeddingBatch(move(self.h), move(self.y), move(self.row), move(self.desc))


class EmbeddingTensors(Dataset):
    """Indexed by a list of positions (one whole batch per item, see ``loader``)."""

    def __init__(self, h: torch.Tensor, y: torch.Tensor, row: torch.Tensor, desc: torch.Tensor | None):
        self.h, self.y, self.row, self.desc = h, y, row, desc

    def __len__(self) -> int:
        return self.h.size(0)

    def __getitem__(self, idx) -> EmbeddingBatch:
        idx = torch.as_tensor(idx)
        return EmbeddingBatch(
            self.h[idx], self.y[idx], self.row[idx], None if self.desc is None else self.desc[idx]
        )


@torch.no_grad()
def encode_dataset(encoder: nn.Module, dataset, batch_size: int, device) -> EmbeddingTensors:
    """Run a (frozen) encoder once over a labeled graph dataset -> embeddings h float [R, d] on CPU."""
    parts: dict[str, list] = {"h": [], "y": [], "row": [], "desc": []}
    for batch in GraphLoader(dataset, batch_size=batch_size, shuffle=False):
        batch = batch.to(device)
        parts["h"].append(encoder(batch).float().cpu())
        parts["y"].append(batch.y.cpu())
        parts["row"].append(batch.row.cpu())
        if "desc" in batch:
            parts["desc"].append(batch.desc.cpu())
    cat = {k: torch.cat(v) if v else None for k, v in parts.items()}
    if cat["h"] is None:
        dim = encoder.out_dim
        cat.update(h=torch.zeros(0, dim), y=torch.zeros(0, 1), row=torch.zeros(0, dtype=torch.long))
    return EmbeddingTensors(cat["h"], cat["y"], cat["row"], cat["desc"])


class EmbeddingDataModule(L.LightningDataModule):
    """Wraps a labeled graph data module: same splits, rows and targets, batches of ``EmbeddingBatch``.

    Every attribute it does not define (smiles, target_names, scaler, datasets, invalid_rows, ...) is read
    from the wrapped module. ``timings``: {"time/precompute_s": seconds spent encoding}.
    """

    def __init__(self, graphs: L.LightningDataModule, encoder: nn.Module):
        super().__init__()
        self.graphs, self.encoder = graphs, encoder
        self.embedded: dict[str, EmbeddingTensors] = {}
        self.timings: dict[str, float] = {}

    def __getattr__(self, name: str):
        if name in ("graphs", "encoder", "embedded", "timings") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.graphs, name)

    def setup(self, stage: str | None = None) -> None:
        self.graphs.setup(stage)
        if self.embedded:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        was_training = self.encoder.training
        self.encoder.to(device).eval()
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # loaders draw seeds: keep the RNG stream training sees
            self.embedded = {
                k: encode_dataset(self.encoder, ds, max(256, self.graphs.batch_size), device)
                for k, ds in self.graphs.datasets.items()
            }
        self.timings["time/precompute_s"] = time.perf_counter() - start
        self.encoder.train(was_training)
        log.info(
            "precomputed %s embeddings in %.2f s",
            {k: len(v) for k, v in self.embedded.items()},
            self.timings["time/precompute_s"],
        )

    def loader(self, key: str, shuffle: bool) -> DataLoader:
        data = self.embedded[key]
        sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
        return DataLoader(
            data, sampler=BatchSampler(sampler, self.graphs.batch_size, drop_last=False), batch_size=None
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)


def maybe_precompute(task: L.LightningModule, datamodule: L.LightningDataModule) -> L.LightningDataModule:
    """The data module to train ``task`` on: wrapped in ``EmbeddingDataModule`` when the task asks for
    precomputed embeddings, else unchanged."""
    if getattr(task, "precompute_embeddings", False):
        if getattr(datamodule, "augment", None):
            raise MolgnnError(
                f"graph.augment={datamodule.augment} has no effect with task.precompute_embeddings=true (the "
                "frozen encoder embeds each molecule once, in its main construction): drop one of the two"
            )
        return EmbeddingDataModule(datamodule, task.encoder)
    return datamodule
