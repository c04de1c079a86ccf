"""The one place graph DataLoaders are built (labeled and unlabeled data modules), and the resumable shuffle
that lets a long run stopped in the middle of an epoch finish that epoch on exactly the molecules it had not
yet seen."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Dataset, Sampler
from torch_geometric.loader import DataLoader


class ResumableShuffle(Sampler[int]):
    """Shuffles ``num_items`` indices each epoch like torch's ``RandomSampler`` (one int64 seed drawn from
    torch's global RNG when the epoch's iteration starts, then ``randperm`` on a private generator: an
    uninterrupted run draws the same orders), and remembers that seed so a checkpoint can hold the epoch's
    order and how far it got.

    ``state(items_done)`` -> ``{"seed", "items_done"}``; ``resume(state)`` makes the next iteration replay
    that seed and skip the first ``items_done`` indices, without drawing from the global RNG (a state with
    ``items_done >= num_items``, or an empty one, is a fresh start: the next epoch draws a new seed)."""

    def __init__(self, num_items: int):
        self.num_items = int(num_items)
        self.epoch_seed: int | None = None
        self._resume: dict | None = None

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[int]:
        resume, self._resume = (self._resume if self.resuming else None), None
        if resume is not None:
            seed, skip = int(resume["seed"]), int(resume["items_done"])
        else:
            seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        self.epoch_seed = seed
        order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(seed))
        yield from order[skip:].tolist()

    def state(self, items_done: int) -> dict:
        """The current epoch's seed and the number of its indices already trained on."""
        return {"seed": self.epoch_seed, "items_done": int(items_done)} if self.epoch_seed is not None else {}

    @property
    def resuming(self) -> bool:
        """True when the next iteration replays a saved epoch from the middle."""
        return self._resume is not None and 0 <= int(self._resume["items_done"]) < self.num_items

    def resume(self, state: dict) -> None:
        """Replay ``state`` (what ``state`` returned) at the next iteration."""
        self._resume = dict(state) if state else None


class ResumableLoader(DataLoader):
    """A shuffling graph DataLoader whose checkpoint state (Lightning calls ``state_dict`` when it saves and
    ``load_state_dict`` before it iterates again) is the epoch's ``ResumableShuffle`` seed and the number of
    batches trained so far in the epoch, read from ``batches_done()`` (the trainer's progress counter)."""

    def __init__(self, dataset: Dataset, batch_size: int, batches_done: Callable[[], int], **kwargs):
        self.order = ResumableShuffle(len(dataset))
        super().__init__(dataset, batch_size=batch_size, sampler=self.order, **kwargs)
        self.batches_done = batches_done

    def __iter__(self):
        if not self.order.resuming:
            return super().__iter__()
        # the interrupted run drew this epoch's random numbers before its checkpoint, whose RNG state is
        # restored: starting the iterator (which draws the workers' base seed) must not draw them again
        rng = torch.get_rng_state()
        iterator = super().__iter__()
        torch.set_rng_state(rng)
        return iterator

    def state_dict(self) -> dict:
        done = self.batches_done()
        return self.order.state(done * self.batch_size) if done < len(self) else {}  # {}: the epoch is over

    def load_state_dict(self, state_dict: dict) -> None:
        self.order.resume(state_dict)


def graph_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    batches_done: Callable[[], int] | None = None,
) -> DataLoader:
    """PyG DataLoader over ``dataset`` (items are ``Data`` graphs); workers persist across epochs. ``sampler``
    (e.g. ``molgnn.data.augment.ConstructionSampler``, which shuffles itself) replaces ``shuffle``. With
    ``shuffle`` and ``batches_done`` (batches trained so far in the epoch), a ``ResumableLoader``: a run
    resumed from a mid-epoch checkpoint finishes the epoch on the molecules it had not seen, drawing the same
    random numbers as the run that was interrupted."""
    common = dict(drop_last=drop_last, num_workers=num_workers, persistent_workers=num_workers > 0)
    if shuffle and sampler is None and batches_done is not None:
        return ResumableLoader(dataset, batch_size, batches_done, **common)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        **common,
    )
