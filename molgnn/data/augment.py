"""Construction augmentation (``graph.augment``, docs/graphs.md): each molecule is also featurized under other
graph constructions from the same parse, and a loader draws one construction per molecule per epoch.

Only constructions whose graphs fit the main spec's embedding tables are allowed together: the spec
``construction_spec(name)`` builds must have the main spec's atom and bond vocabularies, column for column
(atoms, explicit_h and kekule share molgnn's v1 vocabularies; minimal, line_graph and motifs do not, so they
are refused rather than remapped). The augment specs are the main spec with another ``construction``.

``ConstructionSampler`` yields ``(item, construction)`` index pairs: the order is shuffled like a
``RandomSampler`` (torch's global RNG, so a resumed run continues its stream) and the construction of each item
is drawn from ``numpy.random.default_rng([seed, epoch])``, so one seed gives the same constructions epoch by
epoch. ``AugmentedGraphs`` serves them: ``mode="replace"`` swaps the item's graph for that construction's
(training); ``mode="pair"`` keeps the main graph and attaches the other as ``view_x`` / ``view_edge_index`` /
``view_edge_attr`` (the agreement objective's second view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torch_geometric.data import Batch, Data

from molgnn.data.graphs import PackedGraphs
from molgnn.errors import MolgnnError
from molgnn.featurize.spec import CONSTRUCTIONS, FeaturizerSpec


def augment_specs(spec: FeaturizerSpec, names: Sequence[str] | None, key: str = "graph.augment") -> tuple:
    """The specs of the augment constructions ``names`` (the main construction and repeats left out), each the
    main ``spec`` with another construction. Raises a one-line ``MolgnnError`` naming ``key`` and the
    construction when one is unknown or its graphs do not fit the main spec's embedding tables."""
    from molgnn.featurize.constructions import construction_spec  # imports the featurizer modules

    names = [names] if isinstance(names, str) else list(names or [])
    out: list[FeaturizerSpec] = []
    for name in names:
        name = str(name)
        if name not in CONSTRUCTIONS:
            raise MolgnnError(
                f"{key}: graph construction {name!r} is unknown; known: {', '.join(CONSTRUCTIONS)}"
            )
        problem = (
            _misfit(spec, construction_spec(name)) if spec.engine == "molgnn" else f"engine {spec.engine!r}"
        )
        if problem:
            raise MolgnnError(
                f"{key}: construction {name!r} does not fit the main construction {spec.construction!r} "
                f"({problem}); constructions that share embedding tables: {', '.join(compatible(spec)) or 'none'}"
            )
        if name != spec.construction and all(s.construction != name for s in out):
            out.append(replace(spec, construction=name, construction_version=CONSTRUCTIONS[name]))
    return tuple(out)


def compatible(spec: FeaturizerSpec) -> list[str]:
    """Constructions whose graphs fit ``spec``'s embedding tables (``spec``'s own included)."""
    from molgnn.featurize.constructions import construction_spec

    if spec.engine != "molgnn":
        return [spec.construction]
    return [n for n in CONSTRUCTIONS if not _misfit(spec, construction_spec(n))]


def _misfit(spec: FeaturizerSpec, other: FeaturizerSpec) -> str:
    """Why ``other``'s graphs cannot go through ``spec``'s embedding tables ("" when they can)."""
    for kind, mine, theirs in (
        ("atom", spec.atom_features, other.atom_features),
        ("bond", spec.bond_features, other.bond_features),
    ):
        if len(mine) != len(theirs):
            return f"{len(theirs)} {kind} columns, not {len(mine)}"
        for a, b in zip(mine, theirs):
            if a != b:
                return f"{kind} column {a.name!r}: vocabulary {b.name!r} of size {b.size}, not {a.size}"
    return ""


class ConstructionSampler(Sampler):
    """Yields ``(k, c)`` for each of ``num_items`` items: ``c`` in ``choices`` (construction indices, 0 = main),
    drawn per item from ``default_rng([seed, epoch])``. ``shuffle``: items in a random order (torch's global
    RNG); ``set_epoch`` (called by Lightning each epoch) picks the epoch, else each pass counts one."""

    def __init__(self, num_items: int, choices: Sequence[int], seed: int = 0, shuffle: bool = True):
        self.num_items, self.choices, self.seed, self.shuffle = num_items, list(choices), int(seed), shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def constructions(self, epoch: int) -> np.ndarray:
        """long [num_items]: the construction index of each item in ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        return np.asarray(self.choices)[rng.integers(0, len(self.choices), self.num_items)]

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        picks = self.constructions(epoch).tolist()
        order = torch.randperm(self.num_items).tolist() if self.shuffle else range(self.num_items)
        return iter([(k, picks[k]) for k in order])


class PairData(Data):
    """A graph plus a second view of the same molecule (``view_*``), batched side by side."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "view_edge_index":
            return self.view_x.size(0)
        return super().__inc__(key, value, *args, **kwargs)


class AugmentedGraphs(Dataset):
    """``base`` (items k -> ``Data``) with alternative graphs: ``alternatives[c - 1] = (graphs, index)`` where
    ``index`` long [len(base)] is item k's graph in ``graphs`` (-1: that construction failed for it; the main
    graph is served instead). Items are ``(k, c)`` pairs (``ConstructionSampler``) or plain k (main graph)."""

    def __init__(
        self, base: Dataset, alternatives: list[tuple[PackedGraphs, torch.Tensor]], mode: str = "replace"
    ):
        if mode not in ("replace", "pair"):
            raise ValueError(f"mode {mode!r}: replace | pair")
        self.base, self.alternatives, self.mode = base, alternatives, mode

    def __len__(self) -> int:
        return len(self.base)

    def graph(self, k: int, c: int) -> tuple[Data | None, int]:
        """(graph of item k under construction c, the construction actually served); None for the main one."""
        if c <= 0:
            return None, 0
        graphs, index = self.alternatives[c - 1]
        g = int(index[k])
        return (None, 0) if g < 0 else (graphs.get(g), c)

    def __getitem__(self, item):
        k, c = item if isinstance(item, tuple) else (item, 0)
        data = self.base[k]
        other, served = self.graph(k, c)
        if self.mode == "replace":
            if other is not None:
                data.x, data.edge_index, data.edge_attr = other.x, other.edge_index, other.edge_attr
            data.construction = torch.tensor([served])
            return data
        other = data if other is None else other
        pair = PairData(**{key: data[key] for key in data.keys()})
        pair.view_x, pair.view_edge_index, pair.view_edge_attr = other.x, other.edge_index, other.edge_attr
        pair.view_num_nodes, pair.construction = torch.tensor([other.x.size(0)]), torch.tensor([served])
        return pair


def view_batch(batch) -> Batch:
    """The second view of a ``PairData`` batch as a batch of its own (same molecules, same order)."""
    counts = batch.view_num_nodes
    ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    graph_of = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    return Batch(
        x=batch.view_x,
        edge_index=batch.view_edge_index,
        edge_attr=batch.view_edge_attr,
        batch=graph_of,
        ptr=ptr,
    )


def item_indices(features, rows: torch.Tensor) -> list[torch.Tensor]:
    """For each augment construction of engine ``features``: long [len(rows)], the graph of each SMILES row."""
    return [f.graph_index[rows] for f in features.augment]
