"""The one place graph DataLoaders are built (labeled and unlabeled data modules)."""

from __future__ import annotations

from torch.utils.data import Dataset, Sampler
from torch_geometric.loader import DataLoader


def graph_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """PyG DataLoader over ``dataset`` (items are ``Data`` graphs); workers persist across epochs. ``sampler``
    (e.g. ``molgnn.data.augment.ConstructionSampler``, which shuffles itself) replaces ``shuffle``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
