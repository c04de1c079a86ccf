"""Unlabeled SMILES corpora for pretraining: read -> (sample) -> featurize once in parallel chunks (graphs,
canonical keys for exclusion, optional RDKit descriptors; one cache file) -> exclude benchmark molecules ->
train/val loaders.

Any .smi/.csv/.tsv/.txt file, optionally .gz, of any size: molecules are featurized chunk by chunk in worker
processes into ``PackedGraphs``, so no more than one chunk of RDKit molecules exists at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader

from molgnn.data.augment import AugmentedGraphs, ConstructionSampler, augment_specs
from molgnn.data.engine import Products, featurize, featurize_cached
from molgnn.data.graphs import PackedGraphs, table_key
from molgnn.data.loader import ResumableLoader, graph_loader
from molgnn.data.table import check_readable, read_frame, table_format
from molgnn.data.teacher import check_finite, fit_teacher_scaler, load_teacher
from molgnn.errors import InputFileError
from molgnn.featurize.descriptors import DescriptorScaler, check_names
from molgnn.featurize.spec import FeaturizerSpec

log = logging.getLogger(__name__)


def read_smiles_column(path: str | Path, smiles_col: str) -> list[str]:
    """The SMILES of a table (.csv/.tsv: column ``smiles_col``, matched case-insensitively; .smi/.txt:
    first token of each line, a header line ``smiles`` skipped)."""
    p = check_readable(path)
    frame = read_frame(p)
    cols = {str(c).lower(): c for c in frame.columns}
    if table_format(p) in ("smi", "txt"):
        smiles = frame["smiles"].tolist()
        return smiles[1:] if smiles and smiles[0].lower() == smiles_col.lower() else smiles
    if smiles_col.lower() not in cols:
        raise InputFileError(
            f"{p}: no column {smiles_col!r} (from data.smiles_col); columns are: "
            f"{', '.join(map(str, frame.columns[:20]))}"
        )
    return frame[cols[smiles_col.lower()]].astype(str).tolist()


def canonical_smiles(smiles: Sequence, num_workers: int | None = None) -> list[str]:
    """Canonical SMILES without stereo ("" when unparsable): stereoisomers of an excluded molecule match."""
    return featurize(smiles, Products(canonical=True), num_workers).canonical


def excluded_smiles(entries: Sequence[dict]) -> set[str]:
    """Canonical SMILES named by ``exclude`` entries: ``{path, smiles_col, split_path?, keys?}`` (with a
    split file, only the rows of its ``keys``, default ["test"]; without, every row)."""
    out: set[str] = set()
    for entry in entries or []:
        smiles = read_smiles_column(entry["path"], entry.get("smiles_col", "smiles"))
        if entry.get("split_path"):
            try:
                split = json.loads(Path(entry["split_path"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputFileError(
                    f"{entry['split_path']}: unreadable split file (data.exclude): {exc}"
                ) from None
            rows = sorted({int(r) for key in entry.get("keys", ["test"]) for r in split[key]})
            smiles = [smiles[r] for r in rows]
        out.update(c for c in canonical_smiles(smiles, 0) if c)
    return out


class UnlabeledGraphs(Dataset):
    """Graphs ``rows`` of a packed corpus as PyG ``Data`` + per-molecule targets indexed by graph (``desc``
    float [1, D] when descriptors are on, ``teacher`` float [1, T] with a teacher file)."""

    def __init__(self, graphs: PackedGraphs, rows: torch.Tensor, targets: dict[str, torch.Tensor]):
        self.graphs, self.rows, self.targets = graphs, rows, targets

    def __len__(self) -> int:
        return self.rows.numel()

    def __getitem__(self, k: int):
        g = int(self.rows[k])
        data = self.graphs.get(g)
        for name, values in self.targets.items():
            setattr(data, name, values[g : g + 1])
        return data


class UnlabeledDataModule(L.LightningDataModule):
    """SMILES file -> pretraining train/val graph loaders.

    ``max_molecules``: use a seeded random sample of this many rows (null: all). ``exclude``: list of
    ``{path, smiles_col, split_path, keys}``; corpus molecules whose stereo-free canonical SMILES match are
    dropped (and counted in ``num_excluded``); ``exclude_enabled=False`` switches this off. ``descriptors``: attach standardized RDKit 2D descriptors
    (scaler fitted on the training rows) as ``data.desc``. ``augment`` (``graph.augment``): constructions that
    share the main spec's embedding tables, built from the same parse; each item then also carries the
    molecule under one of them as ``view_*`` (``molgnn.data.augment.PairData``; drawn per molecule per epoch,
    validation included), the agreement objective's second view. ``teacher``: a ``.npy`` float [rows, T]
    aligned with the file's SMILES rows (``molgnn.data.teacher``), standardized on the training rows and
    attached as ``data.teacher`` for distillation.
    """

    def __init__(
        self,
        path: str,
        spec: FeaturizerSpec,
        smiles_col: str = "smiles",
        name: str | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        featurize_workers: int | None = None,
        cache_dir: str | None = None,
        max_molecules: int | None = None,
        seed: int = 0,
        val_fraction: float = 0.02,
        max_val: int = 2000,
        exclude: list | None = None,
        exclude_enabled: bool = True,
        descriptors: bool = False,
        descriptor_names: list[str] | None = None,
        descriptor_clip: float = 6.0,
        augment: list[str] | None = None,
        teacher: str | None = None,
    ):
        super().__init__()
        self.path, self.spec, self.smiles_col = Path(path), spec, smiles_col
        self.name = name or self.path.name.split(".")[0]
        self.batch_size, self.num_workers, self.featurize_workers = batch_size, num_workers, featurize_workers
        self.cache_dir, self.max_molecules, self.seed = cache_dir, max_molecules, seed
        self.val_fraction, self.max_val, self.exclude = val_fraction, max_val, list(exclude or [])
        if not exclude_enabled:
            self.exclude = []
        self.use_descriptors, self.descriptor_clip = descriptors, descriptor_clip
        self.descriptor_names = check_names(descriptor_names) if descriptors else None
        self.descriptor_scaler: DescriptorScaler | None = None
        self.teacher, self.teacher_scaler = teacher, None
        self.num_excluded = self.num_failed = 0
        self.augment = [str(a) for a in ([augment] if isinstance(augment, str) else augment or [])]
        self.paired: dict[str, AugmentedGraphs] = {}
        self._ready = False
        self._train_loader, self._train_order = None, {}  # the shuffle's checkpoint state (see state_dict)

    @property
    def num_descriptors(self) -> int:
        return len(self.descriptor_scaler.names) if self.descriptor_scaler else 0

    @property
    def num_teacher(self) -> int:
        return len(self.teacher_scaler.names) if self.teacher_scaler else 0

    def _sample(self, smiles: list[str]) -> np.ndarray:
        """Corpus row numbers used: all, or a seeded sorted sample of ``max_molecules``."""
        if not self.max_molecules or self.max_molecules >= len(smiles):
            return np.arange(len(smiles))
        return np.sort(
            np.random.default_rng(self.seed).choice(len(smiles), self.max_molecules, replace=False)
        )

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        augment = augment_specs(self.spec, self.augment)  # refused before any work
        all_smiles = read_smiles_column(self.path, self.smiles_col)
        teacher = load_teacher(self.teacher, len(all_smiles)) if self.teacher else None
        keep = self._sample(all_smiles)
        smiles = [all_smiles[i] for i in keep]
        if not smiles:
            raise InputFileError(f"{self.path}: no SMILES rows")
        key = f"{table_key(self.path, self.smiles_col)}-n{len(smiles)}-s{self.seed if self.max_molecules else 0}"
        products = Products(
            self.spec,
            canonical=bool(self.exclude),
            descriptors=tuple(self.descriptor_names or ()),
            augment=augment,
        )
        feats = featurize_cached(
            key, smiles, products, self.cache_dir, self.featurize_workers
        )  # one parse each
        self.graphs, graph_index = feats.graphs.graphs, feats.graphs.graph_index
        usable = graph_index >= 0
        self.num_failed = int((~usable).sum())
        if self.exclude:
            usable &= ~self._excluded_mask(feats.canonical)
        rows = torch.nonzero(usable).flatten()
        if rows.numel() < 2:
            raise InputFileError(
                f"{self.path}: fewer than 2 usable molecules ({self.num_failed} unparsable, "
                f"{self.num_excluded} excluded)"
            )
        perm = rows[torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(self.seed))]
        n_val = max(1, min(self.max_val, int(round(self.val_fraction * rows.numel()))))
        split = {"valid": perm[:n_val].sort().values, "train": perm[n_val:].sort().values}
        targets = {}
        if self.use_descriptors:
            self.descriptor_scaler = DescriptorScaler.fit(
                feats.descriptors[split["train"].numpy()], self.descriptor_names, clip=self.descriptor_clip
            )
            targets["desc"] = self._by_graph(self.descriptor_scaler, feats.descriptors, rows, graph_index)
        if teacher is not None:
            check_finite(teacher, keep[rows.numpy()], self.teacher)
            teacher = teacher[keep]
            self.teacher_scaler = fit_teacher_scaler(teacher[split["train"].numpy()], self.descriptor_clip)
            targets["teacher"] = self._by_graph(self.teacher_scaler, teacher, rows, graph_index)
        self.datasets = {k: UnlabeledGraphs(self.graphs, graph_index[v], targets) for k, v in split.items()}
        self.constructions = [self.spec.construction, *(a.construction for a in augment)]
        if augment:  # item k of a split is SMILES row split[key][k]
            self.paired = {
                k: AugmentedGraphs(
                    self.datasets[k], [(f.graphs, f.graph_index[v]) for f in feats.augment], "pair"
                )
                for k, v in split.items()
            }
        self.num_molecules = int(rows.numel())
        log.info(
            "%s: %d SMILES, %d unparsable, %d excluded (benchmark molecules), %d used (%d train, %d val)",
            self.path,
            len(smiles),
            self.num_failed,
            self.num_excluded,
            self.num_molecules,
            len(split["train"]),
            len(split["valid"]),
        )
        self._ready = True

    def _excluded_mask(self, canonical: list[str]) -> torch.Tensor:
        banned = excluded_smiles(self.exclude)
        mask = torch.tensor([c in banned for c in canonical], dtype=torch.bool)
        self.num_excluded = int(mask.sum())
        return mask

    def _by_graph(self, scaler: DescriptorScaler, raw, rows, graph_index) -> torch.Tensor:
        """Standardized per-molecule targets ``raw`` [SMILES rows, D_all] indexed by graph: float32
        [num_graphs, D]."""
        out = torch.zeros(len(self.graphs), len(scaler.names))
        out[graph_index[rows]] = torch.from_numpy(scaler.transform(raw[rows.numpy()]))
        return out

    def info(self) -> dict:
        """Corpus facts for the encoder header (primitives only)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.num_molecules,
            "max_molecules": self.max_molecules,
            "seed": self.seed,
            "unparsable": self.num_failed,
            "excluded": self.num_excluded,
            "exclude_files": [str(e["path"]) for e in self.exclude],
            "descriptors": list(self.descriptor_scaler.names) if self.descriptor_scaler else None,
            **({"teacher": {"path": str(self.teacher), "dim": self.num_teacher}} if self.teacher else {}),
            **({"augment": self.constructions[1:]} if self.paired else {}),
        }

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        drop_last = (
            shuffle and len(self.datasets[key]) > self.batch_size
        )  # no 1-graph batches for contrastive
        if not self.paired:
            done = self._batches_done if shuffle else None
            return graph_loader(
                self.datasets[key], self.batch_size, shuffle, self.num_workers, drop_last, None, done
            )
        dataset = self.paired[key]  # second views: an augment construction (1..C) per molecule per epoch
        sampler = ConstructionSampler(len(dataset), range(1, len(self.constructions)), self.seed, shuffle)
        return graph_loader(dataset, self.batch_size, False, self.num_workers, drop_last, sampler=sampler)

    def _batches_done(self) -> int:
        """Batches of the current epoch handed to training so far (0 outside a fit)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", shuffle=True)
        if isinstance(loader, ResumableLoader):  # replay a restored epoch once (the paired loader is not one)
            loader.load_state_dict(self._train_order)
            self._train_loader, self._train_order = loader, {}
        return loader

    def state_dict(self) -> dict:
        """Saved with each checkpoint: the training epoch's shuffle seed and how far it got. (The loader is
        stateful too, but Lightning restores loader states only if it has not built the loader before the
        restore, and it builds it early to count the steps; the data module's state is restored first.)"""
        return {"train_order": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._train_order = dict(state_dict.get("train_order", {}))

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)
