"""The one place graph DataLoaders are built (labeled and unlabeled data modules)."""

from __future__ import annotations

from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader


def graph_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, drop_last: bool = False
) -> DataLoader:
    """PyG DataLoader over ``dataset`` (items are ``Data`` graphs); workers persist across epochs."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
