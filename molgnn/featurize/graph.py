"""Molecule -> integer feature rows -> PyG ``Data``.

A spec is compiled once into RDKit getters plus lookup dicts, so per molecule the work is one getter call and
one dict lookup per feature value, then a single array conversion.
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


def _lookup(vocab: FeatureVocab, to_code) -> dict:
    """RDKit code -> vocabulary index. RDKit enums are int subclasses, so they hash and compare as ints."""
    return {to_code(value): index for index, value in enumerate(vocab.values)}


def _compile(features: tuple[FeatureVocab, ...], getters: dict, kind: str) -> list[tuple]:
    unknown = [f.name for f in features if f.name not in getters]
    if unknown:
        raise ValueError(f"unknown {kind} feature(s) {unknown}; known: {sorted(getters)}")
    return [(getters[f.name][0], _lookup(f, getters[f.name][1]), f.unknown_index) for f in features]


def _columns(items: list, compiled: list[tuple]) -> np.ndarray:
    """Feature matrix long [len(items), F], built column by column (one dict lookup per value)."""
    if not items:
        return np.zeros((0, len(compiled)), dtype=np.int64)
    cols = [[table.get(get(item), unk) for item in items] for get, table, unk in compiled]
    return np.array(cols, dtype=np.int64).T


class MolFeaturizer:
    """A FeaturizerSpec compiled for speed. ``featurizer(mol) -> GraphArrays``."""

    def __init__(self, spec: FeaturizerSpec):
        self.spec = spec
        self._atom = _compile(spec.atom_features, ATOM_GETTERS, "atom")
        self._bond = _compile(spec.bond_features, BOND_GETTERS, "bond")

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]  # faster than iterating GetAtoms()
        bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
        begin = [b.GetBeginAtomIdx() for b in bonds]
        end = [b.GetEndAtomIdx() for b in bonds]
        # each bond in both directions, interleaved: bond k is edges 2k (begin->end) and 2k+1 (end->begin)
        edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
        edge_index[0, 0::2] = edge_index[1, 1::2] = begin
        edge_index[0, 1::2] = edge_index[1, 0::2] = end
        edge_attr = np.repeat(_columns(bonds, self._bond), 2, axis=0)
        return GraphArrays(np.ascontiguousarray(_columns(atoms, self._atom)), edge_index, edge_attr)

    def prepare(self, mol: Chem.Mol) -> GraphArrays | ParseFailure:
        """Step one of featurizing a chunk, per molecule (``finish`` is step two, once per chunk)."""
        return safely(self, mol)

    def finish(self, prepared: list) -> list[GraphArrays | ParseFailure]:
        """Step two: the graphs of a chunk of ``prepare`` results (here: the results themselves)."""
        return prepared


@lru_cache(maxsize=8)
def _featurizer_for(spec: FeaturizerSpec) -> MolFeaturizer:
    """The compiled featurizer of ``spec.engine``: "molgnn", "graphium" (MiniMol's inputs) or "chemprop",
    and of ``spec.construction`` (the one place every caller's graphs are built: training, caches,
    pretraining corpora, prediction)."""
    if spec.construction != "atoms" and spec.engine != "molgnn":
        raise ValueError(f"graph construction {spec.construction!r} needs featurizer engine 'molgnn'")
    if spec.engine == "graphium":
        from molgnn.featurize.minimol import GraphiumFeaturizer  # imports graph.py itself

        return GraphiumFeaturizer(spec)
    if spec.engine == "chemprop":
        from molgnn.featurize.chemprop import ChempropFeaturizer  # imports graph.py itself

        return ChempropFeaturizer(spec)
    if spec.engine != "molgnn":
        raise ValueError(f"unknown featurizer engine {spec.engine!r}; known: molgnn, graphium, chemprop")
    if spec.construction != "atoms":  # explicit_h, kekule, minimal, line_graph, motifs (docs/graphs.md)
        from molgnn.featurize.constructions import construction_featurizer  # imports graph.py itself

        return construction_featurizer(spec)
    from molgnn.featurize.pickled import PickledFeaturizer  # imports graph.py itself

    if PickledFeaturizer.reads(spec):
        featurizer = PickledFeaturizer(spec)
        if featurizer.usable:
            return featurizer
    return MolFeaturizer(spec)


def mol_to_graph(mol: Chem.Mol, spec: FeaturizerSpec) -> Data:
    """Featurize a sanitized RDKit molecule as a PyG ``Data`` (x long [N,Fa], edge_index long [2,E],
    edge_attr long [E,Fb])."""
    return _featurizer_for(spec)(mol).to_data()


def mol_to_arrays(mol: Chem.Mol, spec: FeaturizerSpec) -> GraphArrays | ParseFailure:
    """Featurize a sanitized molecule; a ``ParseFailure`` (never an exception) when the featurizer fails."""
    return safely(_featurizer_for(spec), mol)


def arrays_featurizer(spec: FeaturizerSpec):
    """``mol_to_arrays`` with the spec resolved once: a function Mol -> GraphArrays | ParseFailure (a loop
    over many molecules saves hashing the spec per molecule)."""
    featurizer = _featurizer_for(spec)
    return lambda mol: safely(featurizer, mol)


def chunk_featurizer(spec: FeaturizerSpec):
    """(prepare, finish) of ``spec``'s featurizer for a chunk of molecules: ``prepare(mol)`` for each molecule
    as it is parsed, ``finish(list of prepare results and ParseFailures)`` -> list[GraphArrays | ParseFailure]
    once for the chunk (the default spec's features are read in bulk there: ``molgnn.featurize.pickled``)."""
    featurizer = _featurizer_for(spec)
    if isinstance(featurizer, MolFeaturizer):
        return featurizer.prepare, featurizer.finish
    return (lambda mol: safely(featurizer, mol)), list


def safely(featurizer, mol: Chem.Mol) -> GraphArrays | ParseFailure:
    try:
        return featurizer(mol)
    except Exception as exc:  # defensive: a featurizer bug must not kill a million-row job
        return ParseFailure(f"featurization failed: {exc}")


def smiles_to_arrays(smiles: object, spec: FeaturizerSpec) -> GraphArrays | ParseFailure:
    """Parse and featurize one SMILES; a ``ParseFailure`` (never an exception) when it is not usable."""
    mol = parse_smiles(smiles)
    return mol if isinstance(mol, ParseFailure) else mol_to_arrays(mol, spec)


def smiles_to_graph(smiles: object, spec: FeaturizerSpec) -> Data | ParseFailure:
    """``smiles_to_arrays`` as a PyG ``Data``."""
    out = smiles_to_arrays(smiles, spec)
    return out if isinstance(out, ParseFailure) else out.to_data()
