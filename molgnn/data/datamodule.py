"""LightningDataModule for labeled molecule tables: read -> featurize once (graphs, scaffolds, descriptors and
packed Morgan bits as the run needs them; cached) -> split -> scale -> loaders."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader

from molgnn.data.augment import AugmentedGraphs, ConstructionSampler, augment_specs
from molgnn.data.engine import Products, featurize_cached
from molgnn.data.graphs import PackedGraphs, table_key
from molgnn.data.loader import graph_loader
from molgnn.data.scaler import TargetScaler
from molgnn.data.target_transform import fit_target_transforms, resolve_kinds
from molgnn.data.table import read_labeled_table
from molgnn.errors import InputFileError, MolgnnError
from molgnn.featurize.descriptors import DescriptorScaler, check_names
from molgnn.featurize.fingerprints import morgan_bits, stack_bits
from molgnn.featurize.spec import FeaturizerSpec

log = logging.getLogger(__name__)


class LabeledGraphs(Dataset):
    """Rows of a table as PyG ``Data`` with ``y`` float [1, T] (NaN = missing) and ``row`` long [1]
    (+ ``desc`` float [1, D], standardized RDKit descriptors, when ``desc`` [R, D] is given)."""

    def __init__(
        self,
        graphs: PackedGraphs,
        graph_index: torch.Tensor,
        targets: torch.Tensor,
        rows: list[int],
        desc: torch.Tensor | None = None,
    ):
        self.graphs, self.graph_index, self.targets, self.rows = graphs, graph_index, targets, rows
        self.desc = desc

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        row = self.rows[k]
        data = self.graphs.get(int(self.graph_index[row]))
        data.y = self.targets[row : row + 1]
        data.row = torch.tensor([row])
        if self.desc is not None:
            data.desc = self.desc[row : row + 1]
        return data


class MoleculeDataModule(L.LightningDataModule):
    """Labeled SMILES table -> train/valid/test graph loaders.

    Invalid rows (unparsable or empty SMILES, unusable targets) are collected in ``invalid_rows`` with the
    reason and left out of every split; nothing is dropped silently.

    ``fingerprints``: also compute packed Morgan bits from the same parse, kept per row in
    ``self.fingerprints`` uint8 [R, FP_BITS / 8] (zero rows where unparsable) for the applicability domain
    (``molgnn.tasks.calibrate``); false: ``self.fingerprints`` is None (a run that does not calibrate).

    ``augment`` (``graph.augment``, docs/graphs.md): graph constructions that share the main spec's embedding
    tables; each molecule's graph under each is built from the same parse, and the training loader serves
    one of the molecule's constructions (main included), drawn per molecule per epoch with ``augment_seed``.
    Validation and test use the main construction. ``augment_pairs`` (``graph.pairs``): the training loader
    serves each molecule as its main graph plus one other construction (``PairData``, ``view_*``), drawn the
    same way.
    """

    def __init__(
        self,
        path: str,
        smiles_col: str,
        target_cols: list[str],
        split,
        spec: FeaturizerSpec,
        batch_size: int = 64,
        num_workers: int = 0,
        featurize_workers: int | None = None,
        cache_dir: str | None = None,
        name: str | None = None,
        descriptors: bool = False,
        descriptor_names: list[str] | None = None,
        fingerprints: bool = True,
        augment: list[str] | None = None,
        augment_seed: int = 0,
        augment_pairs: bool = False,
        target_transform: str | list[str] | None = "none",
    ):
        super().__init__()
        target_cols = (
            [target_cols] if isinstance(target_cols, str) else list(target_cols)
        )  # data.target_cols=logS
        self.path, self.smiles_col, self.target_cols = Path(path), smiles_col, target_cols
        self.splitter, self.spec, self.name = split, spec, name or Path(path).stem
        self.batch_size, self.num_workers = batch_size, num_workers
        self.featurize_workers, self.cache_dir = featurize_workers, cache_dir
        self.descriptor_names = check_names(descriptor_names) if descriptors else None
        self.descriptor_scaler: DescriptorScaler | None = None  # fitted on train rows when descriptors=True
        self.want_fingerprints, self.fingerprints = fingerprints, None
        self.invalid_rows = pd.DataFrame(columns=["row", "line", "smiles", "reason"])
        self.augment = [str(a) for a in ([augment] if isinstance(augment, str) else augment or [])]
        self.augment_seed, self.augmented = int(augment_seed), None
        self.augment_pairs = bool(augment_pairs)
        self.target_transform = target_transform  # checked in setup (one line naming the key)
        self.transform_scores: list[dict[str, float]] = []  # auto: per target, candidate -> validation NLL
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        augment = augment_specs(self.spec, self.augment)  # refused before any work
        if self.augment_pairs and not augment:
            raise MolgnnError(
                "graph.pairs=true needs graph.augment=[...]: the constructions to pair each molecule with"
            )
        resolve_kinds(self.target_transform, self.target_cols)  # so is a bad data.target_transform
        table = read_labeled_table(self.path, self.smiles_col, self.target_cols)
        scaffolds = bool(getattr(self.splitter, "uses_scaffolds", False))
        products = Products(
            self.spec,
            scaffolds=scaffolds,
            descriptors=tuple(self.descriptor_names or ()),
            mol_arrays=(("fp", morgan_bits),) if self.want_fingerprints else (),
            augment=augment,
        )
        features = featurize_cached(
            table_key(self.path, self.smiles_col),
            table.smiles,
            products,
            self.cache_dir,
            self.featurize_workers,
        )  # each SMILES parsed once for every product
        feats = features.graphs
        problems = {**table.problems, **feats.failures}  # a SMILES failure is the more basic reason
        self.invalid_rows = pd.DataFrame(
            [
                {"row": r, "line": r + 2, "smiles": table.smiles[r], "reason": problems[r]}
                for r in sorted(problems)
            ],
            columns=["row", "line", "smiles", "reason"],
        )
        usable = [r for r in range(len(table.smiles)) if r not in problems]
        if not usable:
            raise InputFileError(
                f"{self.path}: no valid rows ({len(problems)} invalid; first: "
                f"line {self.invalid_rows.line.iloc[0]}: {self.invalid_rows.reason.iloc[0]})"
            )
        self.split = self.splitter(
            table.smiles, usable, **({"scaffolds": features.scaffolds} if scaffolds else {})
        )
        for key in ("train", "valid"):
            if not self.split[key]:
                raise InputFileError(f"{self.path}: the {key} split is empty ({len(usable)} usable rows)")
        targets = torch.from_numpy(table.targets)
        self.scaler = TargetScaler.fit(targets[self.split["train"]], self._fit_transforms(table))
        self.smiles, self.target_names = table.smiles, table.target_names
        desc = self._descriptors(features.descriptors) if self.descriptor_names else None
        if self.want_fingerprints:
            self.fingerprints = torch.from_numpy(stack_bits(features.arrays["fp"]))
        self.datasets = {
            k: LabeledGraphs(feats.graphs, feats.graph_index, targets, rows, desc)
            for k, rows in self.split.items()
        }
        if augment:  # item k of the train set is SMILES row split["train"][k]
            rows = torch.as_tensor(self.split["train"], dtype=torch.long)
            alternatives = [(f.graphs, f.graph_index[rows]) for f in features.augment]
            mode = "pair" if self.augment_pairs else "replace"
            self.augmented = AugmentedGraphs(self.datasets["train"], alternatives, mode)
            self.constructions = [self.spec.construction, *(a.construction for a in augment)]
        log.info(
            "%s: %d rows, %d usable, %d invalid; split %s",
            self.path,
            len(table.smiles),
            len(usable),
            len(problems),
            {k: len(v) for k, v in self.split.items()},
        )
        self._ready = True

    def _fit_transforms(self, table) -> list[dict] | None:
        """``data.target_transform`` fitted on the training rows (``auto``: chosen on the validation rows)."""
        kinds = resolve_kinds(self.target_transform, self.target_cols)
        if all(k == "none" for k in kinds):
            return None
        records, self.transform_scores = fit_target_transforms(
            table.targets, self.split["train"], self.split["valid"], kinds, self.path, self.target_cols
        )
        return records

    def _descriptors(self, raw) -> torch.Tensor:
        """Raw descriptors float32 [R, D_all] -> standardized float32 [R, D]; the scaler is fitted on train rows."""
        self.descriptor_scaler = DescriptorScaler.fit(raw[self.split["train"]], self.descriptor_names)
        return torch.from_numpy(self.descriptor_scaler.transform(raw))

    @property
    def num_descriptors(self) -> int:
        """D of ``data.desc`` (0 when descriptors are off)."""
        return len(self.descriptor_scaler.names) if self.descriptor_scaler else 0

    @property
    def num_targets(self) -> int:
        return len(self.target_cols)

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        # a last training batch of one molecule (one atom, e.g. methane) breaks batch norm in training mode:
        # drop that one leftover molecule per epoch (a different one each epoch, since the order is shuffled)
        drop_last = shuffle and len(self.datasets[key]) % self.batch_size == 1
        return graph_loader(self.datasets[key], self.batch_size, shuffle, self.num_workers, drop_last)

    def train_dataloader(self) -> DataLoader:
        if self.augmented is None:
            return self._loader("train", shuffle=True)
        dataset = self.augmented  # one construction per molecule per epoch (0 = main; pairs: another one)
        first = 1 if self.augment_pairs else 0
        sampler = ConstructionSampler(len(dataset), range(first, len(self.constructions)), self.augment_seed)
        drop_last = len(dataset) % self.batch_size == 1
        return graph_loader(dataset, self.batch_size, False, self.num_workers, drop_last, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
