"""RDKit 2D descriptors (``rdkit.Chem.Descriptors``): per molecule (used by the featurization engine,
``molgnn.data.engine``, which also caches them), parallel computation for a SMILES list, and a scaler.

Used as a pretraining target (CheMeleon-style descriptor regression) and as extra input features for a
property head (Chemprop's ``rdkit_2d``). Values are float32 [R, D]; a row whose SMILES does not parse and
a descriptor that fails on a molecule are NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rdkit.Chem import Descriptors

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.errors import MolgnnError
from molgnn.parallel import map_chunks

log = logging.getLogger(__name__)

ALL_DESCRIPTORS: tuple[str, ...] = tuple(name for name, _ in Descriptors._descList)
_FUNCTIONS = dict(Descriptors._descList)


def check_names(names: Sequence[str] | None) -> list[str]:
    """The descriptor names to compute (default: every ``rdkit.Chem.Descriptors`` descriptor)."""
    names = list(ALL_DESCRIPTORS if names is None else names)
    unknown = [n for n in names if n not in _FUNCTIONS]
    if unknown:
        raise MolgnnError(
            f"unknown RDKit descriptor(s) {unknown[:5]} (descriptor_names); "
            f"known: see rdkit.Chem.Descriptors._descList"
        )
    return names


def mol_descriptors(mol, names: Sequence[str]) -> np.ndarray:
    """float64 [D] descriptors of one sanitized Mol; a descriptor that raises is NaN."""
    out = np.full(len(names), np.nan)
    for j, name in enumerate(names):
        try:
            out[j] = float(_FUNCTIONS[name](mol))
        except Exception:  # RDKit descriptors raise on a few exotic molecules
            pass
    return out


def descriptors_chunk(smiles: Sequence, names: Sequence[str]) -> np.ndarray:
    """float32 [R, D] for a chunk of SMILES (NaN rows for unparsable SMILES); values beyond float32 are NaN."""
    out = np.full((len(smiles), len(names)), np.nan)
    for i, s in enumerate(smiles):
        mol = parse_smiles(s)
        if not isinstance(mol, ParseFailure):
            out[i] = mol_descriptors(mol, names)
    return finite_float32(out)


def finite_float32(values: np.ndarray) -> np.ndarray:
    """float [R, D] raw descriptors -> float32 [R, D] with non-finite values and values beyond 1e30 as NaN."""
    values = np.array(values, dtype=np.float64)
    values[~np.isfinite(values) | (np.abs(values) > 1e30)] = np.nan
    return values.astype(np.float32)


def compute_descriptors(
    smiles: Sequence, names: Sequence[str] | None = None, num_workers: int | None = None
) -> np.ndarray:
    """float32 [R, D] RDKit descriptors of R SMILES, computed in parallel chunks."""
    names = check_names(names)
    parts = list(map_chunks(descriptors_chunk, list(smiles), (names,), num_workers))
    return np.concatenate(parts) if parts else np.zeros((0, len(names)), dtype=np.float32)


@dataclass
class DescriptorScaler:
    """Standardize descriptors with statistics of a fitting set.

    ``fit`` keeps descriptors that are finite for at least ``min_finite`` of the rows and not constant;
    raw values are clipped to the fitting set's [0.1%, 99.9%] quantiles, standardized, clipped to
    ``[-clip, clip]``; missing values become 0 (the mean). ``transform``: float [R, D_all] -> float32 [R, D],
    numpy for numpy input (training data), torch on the input's device for a tensor (prediction): one
    computation (float64) for both, so training and prediction see the same numbers.
    """

    names: list[str]
    index: list[int]
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    clip: float = 6.0

    @classmethod
    def fit(
        cls, values: np.ndarray, names: Sequence[str], clip: float = 6.0, min_finite: float = 0.99
    ) -> DescriptorScaler:
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values).mean(axis=0) >= min_finite if len(values) else np.zeros(len(names), bool)
        low = np.nanquantile(values[:, finite], 0.001, axis=0)
        high = np.nanquantile(values[:, finite], 0.999, axis=0)
        clipped = np.clip(values[:, finite], low, high)
        mean, std = np.nanmean(clipped, axis=0), np.nanstd(clipped, axis=0)
        varies = std > 1e-8
        index = np.flatnonzero(finite)[varies]
        dropped = len(names) - len(index)
        if dropped:
            log.info(
                "descriptors: kept %d of %d (dropped %d failing/non-finite/constant)",
                len(index),
                len(names),
                dropped,
            )
        return cls(
            [names[i] for i in index],
            index.tolist(),
            low[varies],
            high[varies],
            mean[varies],
            std[varies],
            clip,
        )

    def transform(self, values: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Raw descriptors float [R, D_all] (columns as fitted; see ``for_columns``) -> standardized float32
        [R, D]: a numpy array for numpy input, a tensor on the input's device for a tensor."""
        if isinstance(values, torch.Tensor):
            return self._standardize(values)
        return self._standardize(torch.from_numpy(np.asarray(values, dtype=np.float64))).numpy()

    def _standardize(self, values: torch.Tensor) -> torch.Tensor:
        def param(a) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float64, device=values.device)

        x = values[:, torch.as_tensor(self.index, dtype=torch.long, device=values.device)].double()
        z = (torch.minimum(torch.maximum(x, param(self.low)), param(self.high)) - param(self.mean)) / param(
            self.std
        )
        return torch.nan_to_num(z.clamp(-self.clip, self.clip), nan=0.0).float()

    def for_columns(self, columns: Sequence[str]) -> DescriptorScaler:
        """The same scaler reading raw values whose columns are ``columns`` (names; each of ``names`` must be
        among them) instead of the fitting set's."""
        columns = list(columns)
        return DescriptorScaler(
            self.names,
            [columns.index(n) for n in self.names],
            self.low,
            self.high,
            self.mean,
            self.std,
            self.clip,
        )

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "index": list(self.index),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "clip": float(self.clip),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DescriptorScaler:
        return cls(
            list(d["names"]),
            list(d["index"]),
            np.asarray(d["low"]),
            np.asarray(d["high"]),
            np.asarray(d["mean"]),
            np.asarray(d["std"]),
            float(d["clip"]),
        )

    def transform_smiles(self, smiles: Sequence, num_workers: int | None = 0) -> np.ndarray:
        """Compute this scaler's descriptors for SMILES and standardize: float32 [R, D]."""
        return self.for_columns(self.names).transform(compute_descriptors(smiles, self.names, num_workers))
