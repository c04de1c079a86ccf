"""The featurization engine: each SMILES is parsed once, and every product a run asks for (packed graphs,
Bemis-Murcko scaffold, RDKit descriptors, stereo-free canonical SMILES, per-molecule arrays such as Morgan
bits) is computed from that one molecule, in worker chunks (``molgnn.parallel.map_chunks``), optionally
cached in one file per (data, product set) (``molgnn.storage.cached``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.chem.scaffold import murcko_scaffold
from molgnn.data.graphs import FeaturizedSmiles, concat_chunks, from_numpy, pack_numpy
from molgnn.featurize.descriptors import finite_float32, mol_descriptors
from molgnn.featurize.graph import chunk_featurizer
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.parallel import map_chunks
from molgnn.storage import cached, load_torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Products:
    """What a run computes for each SMILES. ``spec``: packed graphs (None: no graphs); ``scaffolds``:
    Bemis-Murcko scaffold SMILES; ``descriptors``: RDKit descriptor names; ``canonical``: stereo-free
    canonical SMILES; ``mol_arrays``: (name, module-level function Mol -> np.ndarray) pairs; ``augment``: the
    specs of more graph constructions of each molecule (``molgnn.data.augment``), packed like ``spec``'s."""

    spec: FeaturizerSpec | None = None
    scaffolds: bool = False
    descriptors: tuple[str, ...] = ()
    canonical: bool = False
    mol_arrays: tuple[tuple[str, Callable], ...] = ()
    augment: tuple[FeaturizerSpec, ...] = ()

    def fingerprint(self) -> str:
        """Changes whenever the spec or the product set changes (cache file names)."""
        parts = [
            self.spec.fingerprint() if self.spec else None,
            self.scaffolds,
            list(self.descriptors),
            self.canonical,
            [(n, f"{f.__module__}.{f.__qualname__}") for n, f in self.mol_arrays],
        ]
        if self.augment:  # appended only when asked for: older cache names hold
            parts.append([s.fingerprint() for s in self.augment])
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Features:
    """Products of R SMILES (None where not asked for). ``graphs``: FeaturizedSmiles; ``scaffolds`` /
    ``canonical``: list[str] [R] ("" where unparsable); ``descriptors``: float32 [R, D] (NaN rows where
    unparsable); ``arrays``: name -> list [R] of np.ndarray (None where unparsable); ``augment``: one
    FeaturizedSmiles per ``Products.augment`` spec."""

    graphs: FeaturizedSmiles | None = None
    scaffolds: list[str] | None = None
    descriptors: np.ndarray | None = None
    canonical: list[str] | None = None
    arrays: dict[str, list] = field(default_factory=dict)
    augment: list[FeaturizedSmiles] = field(default_factory=list)


def canonical_key(mol: Chem.Mol) -> str:
    """Canonical SMILES without stereo: stereoisomers share a key."""
    return Chem.MolToSmiles(mol, isomericSmiles=False)


def featurize_job(smiles: Sequence, products: Products) -> dict:
    """Worker job (numpy only: safe in forked workers): parse each of R SMILES once -> {"graphs": packed
    numpy (``graphs.pack_numpy``), "scaffolds": list[str] [R], "descriptors": float32 [R, D], "canonical":
    list[str] [R], <array name>: list [R], "augment": [packed numpy per augment spec]}, each key present
    when asked for."""
    p = products
    out: dict[str, list] = {
        k: []
        for k, on in (
            ("graphs", p.spec),
            ("scaffolds", p.scaffolds),
            ("descriptors", p.descriptors),
            ("canonical", p.canonical),
        )
        if on
    }
    out.update({name: [] for name, _ in p.mol_arrays})
    augment: list[list] = [[] for _ in p.augment]
    blank = np.full(len(p.descriptors), np.nan)
    prepare, finish = chunk_featurizer(p.spec) if p.spec is not None else (None, None)
    augment_featurizers = [chunk_featurizer(spec) for spec in p.augment]
    for s in smiles:
        mol = parse_smiles(s)
        ok = not isinstance(mol, ParseFailure)
        if p.spec is not None:
            out["graphs"].append(prepare(mol) if ok else mol)
        if p.scaffolds:
            out["scaffolds"].append(murcko_scaffold(mol) if ok else "")
        if p.canonical:
            out["canonical"].append(canonical_key(mol) if ok else "")
        if p.descriptors:
            out["descriptors"].append(mol_descriptors(mol, p.descriptors) if ok else blank)
        for name, fn in p.mol_arrays:
            out[name].append(fn(mol) if ok else None)
        for results, (prepare_other, _) in zip(
            augment, augment_featurizers
        ):  # the molecule, another construction
            results.append(prepare_other(mol) if ok else mol)
    if p.spec is not None:
        out["graphs"] = pack_numpy(finish(out["graphs"]), p.spec)
    if p.augment:
        out["augment"] = [
            pack_numpy(finish_other(results), spec)
            for results, (_, finish_other), spec in zip(augment, augment_featurizers, p.augment)
        ]
    if p.descriptors:
        out["descriptors"] = finite_float32(np.reshape(out["descriptors"], (len(smiles), len(p.descriptors))))
    return out


def featurize(smiles: Sequence, products: Products, num_workers: int | None = None) -> Features:
    """Every product of ``products`` for each SMILES, in parallel chunks when the list is large
    (``num_workers=None``: every core; 0: this process)."""
    parts = list(map_chunks(featurize_job, list(smiles), (products,), num_workers))
    out = Features()
    if products.spec is not None:
        out.graphs = concat_chunks([from_numpy(part["graphs"]) for part in parts], products.spec)
    if products.scaffolds:
        out.scaffolds = [s for part in parts for s in part["scaffolds"]]
    if products.canonical:
        out.canonical = [s for part in parts for s in part["canonical"]]
    if products.descriptors:
        out.descriptors = (
            np.concatenate([part["descriptors"] for part in parts])
            if parts
            else np.zeros((0, len(products.descriptors)), np.float32)
        )
    out.arrays = {name: [a for part in parts for a in part[name]] for name, _ in products.mol_arrays}
    out.augment = [
        concat_chunks([from_numpy(part["augment"][i]) for part in parts], spec)
        for i, spec in enumerate(products.augment)
    ]
    return out


def featurize_cached(
    data_key: str,
    smiles: Sequence,
    products: Products,
    cache_dir: str | Path | None,
    num_workers: int | None = None,
) -> Features:
    """``featurize`` cached in ``cache_dir/features-<data_key>-<products.fingerprint()>.pt``; ``data_key``
    names the SMILES (file bytes, column, sampled rows). A second run does no RDKit work."""
    path = None if cache_dir is None else Path(cache_dir) / f"features-{data_key}-{products.fingerprint()}.pt"

    def compute() -> Features:
        log.info("featurizing %d SMILES (%s)", len(smiles), _describe(products))
        return featurize(smiles, products, num_workers)

    return cached(path, compute, _save, lambda p: _load(p, len(smiles)))


def _describe(products: Products) -> str:
    names = [
        ("graphs", products.spec is not None),
        ("scaffolds", products.scaffolds),
        (f"{len(products.descriptors)} descriptors", products.descriptors),
        ("canonical", products.canonical),
    ]
    augment = [f"{s.construction} graphs" for s in products.augment]
    return ", ".join([n for n, on in names if on] + [n for n, _ in products.mol_arrays] + augment)


def _save(features: Features, path: Path) -> None:
    blob = {
        "graphs": features.graphs.to_blob() if features.graphs is not None else None,
        "scaffolds": features.scaffolds,
        "canonical": features.canonical,
        "descriptors": None if features.descriptors is None else torch.from_numpy(features.descriptors),
        "arrays": {k: _pack_rows(v) for k, v in features.arrays.items()},
        "augment": [f.to_blob() for f in features.augment],
    }
    torch.save(blob, path)


def _pack_rows(arrays: list) -> dict | list:
    """list [R] of np.ndarray (None where unparsable) -> {"stack": tensor [V, ...], "valid": bool [R]} when
    every array has one shape and dtype (one tensor loads in milliseconds; R small ones take seconds per
    100k rows), else a list [R] of tensors / None."""
    present = [a for a in arrays if a is not None]
    if len({(a.shape, a.dtype) for a in present}) > 1:
        return [None if a is None else torch.from_numpy(a) for a in arrays]
    return {
        "stack": torch.from_numpy(np.stack(present)) if present else torch.zeros(0),
        "valid": torch.tensor([a is not None for a in arrays], dtype=torch.bool),
    }


def _unpack_rows(stored: dict | list) -> list:
    """Inverse of ``_pack_rows`` -> list [R] of np.ndarray / None."""
    if isinstance(stored, list):
        return [None if a is None else a.numpy() for a in stored]
    rows = iter(stored["stack"].numpy())
    return [next(rows) if ok else None for ok in stored["valid"].tolist()]


def _load(path: Path, rows: int) -> Features:
    blob = load_torch(path)
    out = Features(
        FeaturizedSmiles.from_blob(blob["graphs"]) if blob["graphs"] is not None else None,
        blob["scaffolds"],
        None if blob["descriptors"] is None else blob["descriptors"].numpy(),
        blob["canonical"],
        {k: _unpack_rows(v) for k, v in blob["arrays"].items()},
        [FeaturizedSmiles.from_blob(b) for b in blob.get("augment", [])],
    )
    lengths = {
        len(x) for x in (out.scaffolds, out.canonical, out.descriptors, *out.arrays.values()) if x is not None
    }
    lengths |= {g.graph_index.numel() for g in [out.graphs, *out.augment] if g is not None}
    if lengths - {rows}:
        raise ValueError(f"cache holds {sorted(lengths)} rows, the data has {rows}")
    return out
