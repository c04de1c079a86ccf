"""Molecule -> integer feature rows -> PyG ``Data``.

A spec is compiled once into RDKit getters plus numpy lookup tables, so per molecule the work is one pass
over atoms and bonds and one vectorised table lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from rdkit import Chem
from torch_geometric.data import Data

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.featurize.spec import FeatureVocab, FeaturizerSpec

_LO, _HI = -16, 256  # raw integer codes are clipped into this range before lookup


def _enum(namespace):
    return lambda name: int(namespace.names[name])


# name -> (RDKit getter returning an int-like code, vocabulary value -> code)
ATOM_GETTERS = {
    "atomic_num": (Chem.Atom.GetAtomicNum, int),
    "degree": (Chem.Atom.GetTotalDegree, int),
    "formal_charge": (Chem.Atom.GetFormalCharge, int),
    "chirality": (Chem.Atom.GetChiralTag, _enum(Chem.ChiralType)),
    "num_hs": (Chem.Atom.GetTotalNumHs, int),
    "hybridization": (Chem.Atom.GetHybridization, _enum(Chem.HybridizationType)),
    "aromatic": (Chem.Atom.GetIsAromatic, int),
    "in_ring": (Chem.Atom.IsInRing, int),
}
BOND_GETTERS = {
    "bond_type": (Chem.Bond.GetBondType, _enum(Chem.BondType)),
    "conjugated": (Chem.Bond.GetIsConjugated, int),
    "bond_in_ring": (Chem.Bond.IsInRing, int),
    "stereo": (Chem.Bond.GetStereo, _enum(Chem.BondStereo)),
    "bond_dir": (Chem.Bond.GetBondDir, _enum(Chem.BondDir)),
}


@dataclass
class GraphArrays:
    """One molecule's graph as numpy arrays: x long [N, Fa], edge_index long [2, E], edge_attr long [E, Fb]."""

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray

    def to_data(self) -> Data:
        return Data(
            x=torch.from_numpy(self.x),
            edge_index=torch.from_numpy(self.edge_index),
            edge_attr=torch.from_numpy(self.edge_attr),
        )


def _lookup_table(vocab: FeatureVocab, to_code) -> np.ndarray:
    table = np.full(_HI - _LO, vocab.unknown_index, dtype=np.int64)
    for index, value in enumerate(vocab.values):
        table[to_code(value) - _LO] = index
    return table


def _compile(features: tuple[FeatureVocab, ...], getters: dict, kind: str):
    unknown = [f.name for f in features if f.name not in getters]
    if unknown:
        raise ValueError(f"unknown {kind} feature(s) {unknown}; known: {sorted(getters)}")
    funcs = [getters[f.name][0] for f in features]
    tables = np.stack([_lookup_table(f, getters[f.name][1]) for f in features]) if features else None
    return funcs, tables


def _apply(tables: np.ndarray, codes: list[list[int]], width: int) -> np.ndarray:
    if not codes:
        return np.zeros((0, width), dtype=np.int64)
    raw = np.clip(np.asarray(codes, dtype=np.int64) - _LO, 0, _HI - _LO - 1)
    return tables[np.arange(width)[None, :], raw]


class MolFeaturizer:
    """A FeaturizerSpec compiled for speed. ``featurizer(mol) -> GraphArrays``."""

    def __init__(self, spec: FeaturizerSpec):
        self.spec = spec
        self._atom_funcs, self._atom_tables = _compile(spec.atom_features, ATOM_GETTERS, "atom")
        self._bond_funcs, self._bond_tables = _compile(spec.bond_features, BOND_GETTERS, "bond")

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        atom_codes = [[f(a) for f in self._atom_funcs] for a in mol.GetAtoms()]
        x = _apply(self._atom_tables, atom_codes, len(self._atom_funcs))
        bonds = list(mol.GetBonds())
        ends = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds], dtype=np.int64)
        ends = ends.reshape(-1, 2)
        # each bond in both directions, interleaved: (i->j, j->i) for bond k at columns 2k, 2k+1
        edge_index = np.stack([ends, ends[:, ::-1]], axis=1).reshape(-1, 2).T.copy()
        bond_codes = [[f(b) for f in self._bond_funcs] for b in bonds]
        edge_attr = np.repeat(_apply(self._bond_tables, bond_codes, len(self._bond_funcs)), 2, axis=0)
        return GraphArrays(x, edge_index, edge_attr)


@lru_cache(maxsize=8)
def _featurizer_for(spec: FeaturizerSpec) -> MolFeaturizer:
    return MolFeaturizer(spec)


def mol_to_graph(mol: Chem.Mol, spec: FeaturizerSpec) -> Data:
    """Featurize a sanitized RDKit molecule as a PyG ``Data`` (x long [N,Fa], edge_index long [2,E],
    edge_attr long [E,Fb])."""
    return _featurizer_for(spec)(mol).to_data()


def smiles_to_arrays(smiles: object, spec: FeaturizerSpec) -> GraphArrays | ParseFailure:
    """Parse and featurize one SMILES; a ``ParseFailure`` (never an exception) when it is not usable."""
    mol = parse_smiles(smiles)
    if isinstance(mol, ParseFailure):
        return mol
    try:
        return _featurizer_for(spec)(mol)
    except Exception as exc:  # defensive: a featurizer bug must not kill a million-row job
        return ParseFailure(f"featurization failed: {exc}")


def smiles_to_graph(smiles: object, spec: FeaturizerSpec) -> Data | ParseFailure:
    """``smiles_to_arrays`` as a PyG ``Data``."""
    out = smiles_to_arrays(smiles, spec)
    return out if isinstance(out, ParseFailure) else out.to_data()
