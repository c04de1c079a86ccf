"""Train/valid/test splits over row indices: seeded random, Bemis-Murcko scaffold, predefined file.

Each splitter is called as ``splitter(smiles, candidates) -> {"train", "valid", "test"}`` where
``candidates`` are the usable row indices; rows outside it never appear in a split.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from molgnn.data.engine import Products, featurize
from molgnn.errors import InputFileError

Split = dict[str, list[int]]


def _check_sizes(sizes: list[float]) -> None:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or abs(sum(sizes) - 1.0) > 1e-6:
        raise ValueError(f"split.sizes must be three non-negative fractions summing to 1, got {list(sizes)}")


class RandomSplit:
    """Seeded random split with fractions ``sizes`` (train, valid, test)."""

    def __init__(self, sizes: list[float] = (0.8, 0.1, 0.1), seed: int = 0):
        _check_sizes(list(sizes))
        self.sizes, self.seed = list(sizes), seed

    def __call__(self, smiles: list[str], candidates: list[int]) -> Split:
        order = np.random.default_rng(self.seed).permutation(np.asarray(candidates, dtype=np.int64))
        n_train = int(round(self.sizes[0] * len(order)))
        n_valid = int(round(self.sizes[1] * len(order)))
        return {
            "train": sorted(order[:n_train].tolist()),
            "valid": sorted(order[n_train : n_train + n_valid].tolist()),
            "test": sorted(order[n_train + n_valid :].tolist()),
        }


class ScaffoldSplit:
    """Deterministic Bemis-Murcko scaffold split (MoleculeNet / Hu et al. convention): scaffold sets sorted
    by size, largest first (ties: later first row first, as DeepChem), filled into train up to ``sizes[0]``, then valid, rest test."""

    uses_scaffolds = True  # the DataModule passes the scaffolds of its one featurization pass

    def __init__(self, sizes: list[float] = (0.8, 0.1, 0.1)):
        _check_sizes(list(sizes))
        self.sizes = list(sizes)

    def __call__(self, smiles: list[str], candidates: list[int], scaffolds: list[str] | None = None) -> Split:
        """``scaffolds``: scaffold SMILES of every row (list [R]); computed for the candidates when None."""
        if scaffolds is None:
            found = featurize([smiles[r] for r in candidates], Products(scaffolds=True), 0).scaffolds
            scaffolds = dict(zip(candidates, found))
        groups: dict[str, list[int]] = defaultdict(list)
        for row in candidates:
            groups[scaffolds[row]].append(row)
        ordered = sorted(groups.values(), key=lambda rows: (len(rows), rows[0]), reverse=True)
        n = len(candidates)
        train_cut, valid_cut = self.sizes[0] * n, (self.sizes[0] + self.sizes[1]) * n
        split: Split = {"train": [], "valid": [], "test": []}
        for rows in ordered:
            if len(split["train"]) + len(rows) <= train_cut:
                split["train"] += rows
            elif len(split["train"]) + len(split["valid"]) + len(rows) <= valid_cut:
                split["valid"] += rows
            else:
                split["test"] += rows
        return {k: sorted(v) for k, v in split.items()}


class PredefinedSplit:
    """Split read from a JSON file ``{"train": [...], "valid": [...], "test": [...]}`` of 0-based row
    indices (header excluded). Rows that are not usable (invalid SMILES or target) are left out."""

    def __init__(self, path: str):
        self.path = Path(path)

    def __call__(self, smiles: list[str], candidates: list[int]) -> Split:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise InputFileError(f"{self.path}: split file not found (split.path)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{self.path}: split file is not valid JSON: {exc}") from None
        missing = [k for k in ("train", "valid", "test") if k not in raw]
        if missing:
            raise InputFileError(f"{self.path}: split file lacks key(s) {missing}")
        usable = set(candidates)
        out: Split = {}
        for key in ("train", "valid", "test"):
            rows = [int(r) for r in raw[key]]
            bad = [r for r in rows if not 0 <= r < len(smiles)]
            if bad:
                raise InputFileError(
                    f"{self.path}: {key} row {bad[0]} is out of range for a table of {len(smiles)} rows"
                )
            out[key] = sorted(r for r in rows if r in usable)
        return out
