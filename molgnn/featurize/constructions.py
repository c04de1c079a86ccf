"""Graph constructions: one molecule, many graphs (docs/graphs.md).

``FeaturizerSpec.construction`` names how a parsed, sanitized RDKit Mol becomes ``GraphArrays``:

    atoms       heavy atoms as nodes, each bond as two directed edges (molgnn's graphs before constructions)
    explicit_h  ``Chem.AddHs`` first: hydrogens are nodes (element 1), bonds to them are edges
    kekule      ``Chem.Kekulize(clearAromaticFlags=True)`` first: single/double bonds, no aromatic flags
    minimal     atoms as nodes with element + chirality only, bonds with bond type only (its own vocabularies)
    line_graph  bonds as nodes (bond features), an edge pair per two bonds sharing an atom (that atom's
                features); an atom with no bond becomes a featureless node with a self-loop edge pair carrying
                its features, so every molecule has >= 1 node and none of its atoms is dropped
    motifs      the atoms graph plus one super-node per ring (symmetrized SSSR) and per functional-group
                match, linked to each member atom by an edge pair of bond type "MOTIF"

Every construction keeps the edge invariant: edges come in pairs, ``2k`` and ``2k + 1`` are each other's
reverse. ``construction_spec(name)`` is the spec of each (the ``graph`` config group calls it);
``construction_featurizer(spec)`` is the compiled featurizer ``molgnn.featurize.graph`` dispatches to.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from rdkit import Chem

from molgnn.featurize.graph import ATOM_GETTERS, BOND_GETTERS, GraphArrays, MolFeaturizer, _columns, _compile
from molgnn.featurize.spec import CONSTRUCTIONS, ELEMENTS, FeatureVocab, FeaturizerSpec, default_spec

MOTIF_BOND = "MOTIF"  # bond_type value of a super-node <-> member atom link
RING_KINDS = ("ring3", "ring4", "ring5", "ring6", "ring7", "ring8", "ring_large")
FUNCTIONAL_GROUPS = {  # name -> SMARTS; every matched atom is linked to the group's super-node
    "carboxylic_acid": "[CX3](=O)[OX2H1,OX1-]",
    "ester": "[CX3](=O)[OX2H0][#6]",
    "amide": "[CX3](=O)[NX3]",
    "ketone": "[CX3;$(C([#6])[#6])]=[OX1]",
    "aldehyde": "[CX3H1;$(C[#6])]=[OX1]",
    "alcohol": "[OX2H1;$(O[CX4])]",
    "phenol": "[OX2H1;$(Oc)]",
    "amine": "[NX3;+0;!$(NC=[O,S,N]);!$(N[a]);!$(N[S,P]=O)]",
    "nitro": "[N+](=O)[O-]",
    "nitrile": "[CX2]#[NX1]",
    "sulfonamide": "[SX4](=O)(=O)[NX3]",
}


def construction_spec(construction: str = "atoms", groups: list[str] | None = None) -> FeaturizerSpec:
    """The featurizer spec of a construction (molgnn's v1 vocabularies arranged for it). ``groups``: the
    functional groups a ``motifs`` graph marks (default: every one of ``FUNCTIONAL_GROUPS``; [] rings only)."""
    if construction not in CONSTRUCTIONS:
        raise ValueError(f"graph construction {construction!r} is unknown; known: {sorted(CONSTRUCTIONS)}")
    if groups is not None and construction != "motifs":
        raise ValueError(f"graph construction {construction!r} takes no functional groups (only motifs)")
    base = default_spec()
    if construction == "atoms":
        return base
    spec = replace(base, construction=construction, construction_version=CONSTRUCTIONS[construction])
    if construction == "minimal":
        chirality = next(f for f in base.atom_features if f.name == "chirality")
        return replace(
            spec,
            name="molgnn-minimal",
            atom_features=(FeatureVocab("atomic_num", ELEMENTS[:100]), chirality),
            bond_features=(base.bond_features[0],),
        )
    if construction == "line_graph":  # nodes are bonds, edges are atoms: the vocabularies swap roles
        return replace(spec, atom_features=base.bond_features, bond_features=base.atom_features)
    if construction == "motifs":
        groups = list(FUNCTIONAL_GROUPS) if groups is None else list(groups)
        unknown = sorted(set(groups) - set(FUNCTIONAL_GROUPS))
        if unknown:
            raise ValueError(f"functional group(s) {unknown} unknown; known: {sorted(FUNCTIONAL_GROUPS)}")
        kind = FeatureVocab("node_kind", ("atom", *RING_KINDS, *groups))
        bond_type = base.bond_features[0]
        bond_type = replace(bond_type, values=(*bond_type.values, MOTIF_BOND))
        return replace(
            spec,
            atom_features=(kind, *base.atom_features),
            bond_features=(bond_type, *base.bond_features[1:]),
        )
    return spec  # explicit_h, kekule: the same vocabularies, another graph


def construction_featurizer(spec: FeaturizerSpec):
    """The compiled featurizer (``mol -> GraphArrays``) of ``spec.construction``."""
    name = spec.construction  # a known name at the version built here (FeaturizerSpec checks both)
    if spec.engine != "molgnn" and name != "atoms":
        raise ValueError(f"graph construction {name!r} needs featurizer engine 'molgnn', not {spec.engine!r}")
    if name == "explicit_h":
        return _Prepared(spec, Chem.AddHs)
    if name == "kekule":
        return _Prepared(spec, _kekulized)
    if name == "line_graph":
        return LineGraphFeaturizer(spec)
    if name == "motifs":
        return MotifFeaturizer(spec)
    return MolFeaturizer(spec)  # atoms, minimal: the spec's columns on the molecule as parsed


def _kekulized(mol: Chem.Mol) -> Chem.Mol:
    mol = Chem.Mol(mol)  # the caller's molecule (shared by the engine's other products) stays aromatic
    Chem.Kekulize(mol, clearAromaticFlags=True)
    return mol


class _Prepared(MolFeaturizer):
    """``MolFeaturizer`` on a transformed copy of the molecule (hydrogens added, kekulized)."""

    def __init__(self, spec: FeaturizerSpec, prepare):
        super().__init__(spec)
        self._prepare = prepare

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        return super().__call__(self._prepare(mol))


def _unknown_row(compiled: list[tuple]) -> np.ndarray:
    return np.array([unk for _, _, unk in compiled], dtype=np.int64)


def _pairs(pairs: list[tuple[int, int]]) -> np.ndarray:
    """(a, b) pairs -> edge_index long [2, 2P], pair k as edges 2k (a -> b) and 2k + 1 (b -> a)."""
    out = np.empty((2, 2 * len(pairs)), dtype=np.int64)
    if pairs:
        a, b = np.array(pairs, dtype=np.int64).T
        out[0, 0::2] = out[1, 1::2] = a
        out[0, 1::2] = out[1, 0::2] = b
    return out


class LineGraphFeaturizer:
    """Bonds as nodes (``spec.atom_features`` are bond features), atoms as edges (``spec.bond_features``
    are atom features): for each atom, in index order, an edge pair per two of its bonds (lower bond index
    first). An atom with no bond becomes a node of unknown buckets with a self-loop edge pair."""

    def __init__(self, spec: FeaturizerSpec):
        self.spec = spec
        self._node = _compile(spec.atom_features, BOND_GETTERS, "line-graph node (bond)")
        self._edge = _compile(spec.bond_features, ATOM_GETTERS, "line-graph edge (atom)")

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]
        bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
        nodes = [_columns(bonds, self._node)]
        pairs, via = [], []  # via: the atom each edge pair goes through
        isolated = len(bonds)
        for atom in atoms:
            incident = sorted(b.GetIdx() for b in atom.GetBonds())
            if not incident:  # keeps the atom (and a molecule of one atom) in the graph
                nodes.append(_unknown_row(self._node)[None, :])
                pairs.append((isolated, isolated))
                via.append(atom.GetIdx())
                isolated += 1
            for i, first in enumerate(incident):
                for second in incident[i + 1 :]:
                    pairs.append((first, second))
                    via.append(atom.GetIdx())
        atom_rows = _columns(atoms, self._edge)
        edge_attr = np.repeat(atom_rows[np.array(via, dtype=np.int64)], 2, axis=0)
        return GraphArrays(np.ascontiguousarray(np.concatenate(nodes)), _pairs(pairs), edge_attr)


class MotifFeaturizer:
    """The atoms graph (first column ``node_kind`` = "atom") plus a super-node per ring and functional group
    match (``node_kind`` names it; ``aromatic`` and ``in_ring`` say what they can of a ring; the other columns
    are unknown buckets), each linked to its member atoms by an edge pair of bond type "MOTIF" (the other bond
    columns unknown buckets). Atoms' bonds come first, as in the atoms graph; links follow, motif by motif."""

    def __init__(self, spec: FeaturizerSpec):
        kind, *atom_features = spec.atom_features
        bond_type, *bond_rest = spec.bond_features
        if (
            kind.name != "node_kind"
            or bond_type.name != "bond_type"
            or bond_type.values[-1:] != (MOTIF_BOND,)
        ):
            raise ValueError(
                "a motifs spec starts with node_kind (atoms) and bond_type ending in MOTIF (bonds)"
            )
        self.spec, self.kinds = spec, {k: i for i, k in enumerate(kind.values)}
        real_type = replace(bond_type, values=bond_type.values[:-1], unknown=bond_type.unknown_index)
        self._base = MolFeaturizer(
            replace(spec, atom_features=tuple(atom_features), bond_features=(real_type, *bond_rest))
        )
        self._groups = [
            (self.kinds[name], Chem.MolFromSmarts(FUNCTIONAL_GROUPS[name]))
            for name in kind.values
            if name in FUNCTIONAL_GROUPS
        ]
        self._blank = _unknown_row(self._base._atom)
        names = [f.name for f in atom_features]
        self._flags = {
            n: (names.index(n), atom_features[names.index(n)]) for n in ("aromatic", "in_ring") if n in names
        }
        self._link = np.array(
            [len(bond_type.values) - 1] + [f.unknown_index for f in bond_rest], dtype=np.int64
        )

    def motifs(self, mol: Chem.Mol) -> list[tuple[int, tuple[int, ...], bool]]:
        """(node_kind index, member atoms, aromatic ring) of each ring, then of each group match."""
        out = []
        for ring in Chem.GetSymmSSSR(mol):
            ring = tuple(ring)
            size = f"ring{len(ring)}" if len(ring) <= 8 else "ring_large"
            aromatic = all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in ring)
            out.append((self.kinds[size], ring, aromatic))
        for kind, pattern in self._groups:
            out += [(kind, match, False) for match in mol.GetSubstructMatches(pattern)]
        return out

    def _super_row(self, kind: int, is_ring: bool, aromatic: bool) -> np.ndarray:
        row = self._blank.copy()
        for name, (col, vocab) in self._flags.items():
            if is_ring:
                row[col] = vocab.values.index(aromatic if name == "aromatic" else True)
        return np.concatenate([[kind], row])

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        graph = self._base(mol)
        n = graph.x.shape[0]
        motifs = self.motifs(mol)
        ring_kinds = {self.kinds[k] for k in RING_KINDS}
        rows = [np.concatenate([np.zeros((n, 1), np.int64), graph.x], axis=1)]  # node_kind "atom" = 0
        rows += [self._super_row(k, k in ring_kinds, aromatic)[None, :] for k, _, aromatic in motifs]
        pairs = [(n + m, atom) for m, (_, members, _) in enumerate(motifs) for atom in members]
        edge_attr = np.concatenate([graph.edge_attr, np.repeat(self._link[None, :], 2 * len(pairs), axis=0)])
        edge_index = np.concatenate([graph.edge_index, _pairs(pairs)], axis=1)
        return GraphArrays(np.ascontiguousarray(np.concatenate(rows)), edge_index, edge_attr)
