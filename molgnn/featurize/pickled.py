"""The default graph features of a chunk of molecules read in bulk from RDKit's binary pickle.

Per molecule, ``MolFeaturizer`` makes ~50 Boost.Python atom and bond objects (about 2 us each) and a getter
call per feature; that is more than RDKit takes to parse the SMILES. Here each molecule is serialized once by
RDKit's C++ pickler (``Mol.ToBinary``, ~18 us), a short Python scan finds each atom and bond record, and every
feature of the whole chunk is then read with a few numpy operations.

Pickle layout read here (RDKit ``Code/GraphMol/MolPickler.cpp``, format 16, molecules of at most 255 atoms so
atom indices are one byte): header (magic 0xDEADBEEF, a version tag, major/minor/patch, atom and bond counts,
a flag byte, the BEGINATOM tag); per atom: atomic number, flags (bit 6 aromatic, bit 5 no implicit H), int32
property flags, then one byte per set flag in this order: formal charge (bit 1, signed), chiral tag (2),
hybridization (3, SP3 when absent), explicit H count (4), explicit valence (5), implicit valence (6), radical
electrons (7), and a uint32 isotope (bit 8); the BEGINBOND tag; per bond: begin, end, flags (bit 5 conjugated,
bit 3 type present, 2 direction present, 1 stereo present), then type (SINGLE when absent), direction, stereo
with its stereo atoms; a ring tag and the rings' atoms. A record this module does not read (query atoms, atom
map numbers, dummy labels, monomer info, more than 255 atoms, no ring information) sends that molecule through
``MolFeaturizer`` instead, and so does every molecule when the installed RDKit's pickles do not reproduce
``MolFeaturizer`` on a reference set (checked once per process, ``PickledFeaturizer.usable``).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from rdkit import Chem

from molgnn.chem.parse import ParseFailure
from molgnn.featurize.graph import ATOM_GETTERS, BOND_GETTERS, GraphArrays, MolFeaturizer, safely
from molgnn.featurize.spec import FeaturizerSpec

log = logging.getLogger(__name__)

_HEADER = b"\xef\xbe\xad\xde\x00\x00\x00\x00\x10\x00\x00\x00"  # magic, version tag, major 16
_BEGINATOM, _BEGINBOND = 1, 11
_RING_TAGS = {0x14, 0x42, 0x43}  # SSSR, symmetrized SSSR, fast ring finding
_ONE_BYTE_FIELDS = [bin(pf & 0xFE).count("1") for pf in range(256)]  # property flag bits 1-7
_ATOM_NAMES = (
    "atomic_num",
    "degree",
    "formal_charge",
    "chirality",
    "num_hs",
    "hybridization",
    "aromatic",
    "in_ring",
)
_BOND_NAMES = ("bond_type", "conjugated", "bond_in_ring", "stereo", "bond_dir")
REFERENCE_SMILES = (  # the self-check: charges, stereo, isotopes, radicals, dative bonds, salts, fused rings
    "C[C@H](N)C(=O)O F/C=C/F C/C=C\\C [NH4+] [O-]C(=O)C [Na+].[Cl-] [2H]C [13CH4] [CH2]C N->[Cu+2] [Fe+2] "
    "c1ccc2c(c1)[nH]c1ccccc12 C12CC(C1)C2 CC(C)(C)[N+]#[C-] C=C=C O=S(=O)(O)O C[Si](C)(C)C [He]"
).split()


def _scan(buf: bytes, p: int) -> tuple[list[int], list[int], list[bytes]] | None:
    """Offsets of one pickle's atom and bond records (the pickle starts at ``buf[p]``) and its rings' atom
    indices; None when the pickle holds something this module does not read."""
    if buf[p : p + 12] != _HEADER or buf[p + 29] != _BEGINATOM or buf[p + 23] or buf[p + 22] or buf[p + 21]:
        return None  # another format, or >= 256 atoms (int32 indices)
    n, m = buf[p + 20], int.from_bytes(buf[p + 24 : p + 28], "little")
    q, atoms, bonds, rings = p + 30, [], [], []
    for _ in range(n):
        if buf[q + 1] & 0x9F or buf[q + 2] & 1 or buf[q + 3] > 1 or buf[q + 4] or buf[q + 5]:
            return None  # query, map number, dummy label, monomer info, coordinates, unknown properties
        atoms.append(q)
        q += 6 + _ONE_BYTE_FIELDS[buf[q + 2]] + 4 * buf[q + 3]
    if buf[q] != _BEGINBOND:
        return None
    q += 1
    for _ in range(m):
        flags = buf[q + 2]
        if flags & 0x91:
            return None  # query bond, molfile end points
        bonds.append(q)
        q += 3 + (flags >> 3 & 1) + (flags >> 2 & 1)
        if flags & 2:
            q += 2 + buf[q + 1]  # stereo, number of stereo atoms, the atoms
    if buf[q] not in _RING_TAGS:
        return None
    count, q = int.from_bytes(buf[q + 1 : q + 5], "little"), q + 5
    for _ in range(count):
        rings.append(buf[q + 1 : q + 1 + buf[q]])
        q += 1 + buf[q]
    return atoms, bonds, rings


def _optional(data: np.ndarray, offset: np.ndarray, present: np.ndarray, default: int) -> np.ndarray:
    """Values of an optional one-byte field (``default`` where absent); moves ``offset`` past present ones."""
    values = np.where(present, data[offset], default)
    offset += present
    return values


def _atom_fields(data: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-atom codes (long [N]) of every atom record starting at ``starts`` (long [N])."""
    flags, props = data[starts + 1], data[starts + 2].astype(np.int64)
    offset = starts + 6
    signed = data.view(np.int8)
    charge = _optional(signed, offset, props >> 1 & 1, 0)
    chirality = _optional(data, offset, props >> 2 & 1, 0)
    hybridization = _optional(data, offset, props >> 3 & 1, int(Chem.HybridizationType.SP3))
    explicit_hs = _optional(data, offset, props >> 4 & 1, 0)
    offset += props >> 5 & 1  # explicit valence
    implicit_valence = _optional(data, offset, props >> 6 & 1, 0)
    no_implicit = flags >> 5 & 1
    return {
        "atomic_num": data[starts].astype(np.int64),
        "formal_charge": charge.astype(np.int64),
        "chirality": chirality.astype(np.int64),
        "num_hs": (explicit_hs + np.where(no_implicit, 0, implicit_valence)).astype(np.int64),
        "hybridization": hybridization.astype(np.int64),
        "aromatic": (flags >> 6 & 1).astype(np.int64),
    }


def _bond_fields(data: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-bond codes (long [B]) of every bond record starting at ``starts`` (long [B])."""
    flags = data[starts + 2].astype(np.int64)
    offset = starts + 3
    return {
        "begin": data[starts].astype(np.int64),
        "end": data[starts + 1].astype(np.int64),
        "conjugated": flags >> 5 & 1,
        "bond_type": _optional(data, offset, flags >> 3 & 1, int(Chem.BondType.SINGLE)).astype(np.int64),
        "bond_dir": _optional(data, offset, flags >> 2 & 1, 0).astype(np.int64),
        "stereo": _optional(data, offset, flags >> 1 & 1, 0).astype(np.int64),
    }


def _ring_members(rings: list[np.ndarray], total_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Global atom indices of ring atoms, and keys (min * total + max) of ring bonds (consecutive ring atoms)."""
    if not rings:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = np.concatenate(rings)
    sizes = np.array([len(r) for r in rings])
    following = np.arange(1, len(flat) + 1)
    ends = np.cumsum(sizes)
    following[ends - 1] = ends - sizes  # each ring closes on its first atom
    a, b = flat, flat[following]
    return flat, np.minimum(a, b) * total_atoms + np.maximum(a, b)


class _Lookup:
    """RDKit code -> vocabulary index for one feature, vectorized (``graph._lookup`` as a table)."""

    def __init__(self, vocab, to_code):
        codes = {int(to_code(value)): index for index, value in enumerate(vocab.values)}
        self.low, self.unknown = min(codes), vocab.unknown_index
        self.table = np.full(max(codes) - self.low + 1, self.unknown, dtype=np.int64)
        self.table[[c - self.low for c in codes]] = list(codes.values())

    def __call__(self, values: np.ndarray) -> np.ndarray:
        index = values - self.low
        inside = (index >= 0) & (index < len(self.table))
        return np.where(inside, self.table[np.where(inside, index, 0)], self.unknown)


class PickledFeaturizer(MolFeaturizer):
    """``MolFeaturizer`` for a chunk: ``prepare(mol)`` pickles each molecule (or returns its ParseFailure, or
    its graph when the pickle cannot be read), ``finish(prepared)`` reads every pickle of the chunk at once.
    The same arrays as ``MolFeaturizer`` (tests/test_featurize_pickled.py); ``__call__`` is MolFeaturizer's."""

    def __init__(self, spec: FeaturizerSpec):
        super().__init__(spec)
        self._atoms = [(f.name, _Lookup(f, ATOM_GETTERS[f.name][1])) for f in spec.atom_features]
        self._bonds = [(f.name, _Lookup(f, BOND_GETTERS[f.name][1])) for f in spec.bond_features]

    @staticmethod
    def reads(spec: FeaturizerSpec) -> bool:
        """Whether every feature of ``spec`` is one this module reads (the default spec's)."""
        return all(f.name in _ATOM_NAMES and f.encoding is None for f in spec.atom_features) and all(
            f.name in _BOND_NAMES and f.encoding is None for f in spec.bond_features
        )

    def prepare(self, mol: Chem.Mol) -> bytes | GraphArrays | ParseFailure:
        if mol.GetNumAtoms() > 255:
            return safely(self, mol)
        return mol.ToBinary()

    def finish(self, prepared: list) -> list[GraphArrays | ParseFailure]:
        pickles = [i for i, item in enumerate(prepared) if isinstance(item, bytes)]
        if not pickles:
            return prepared
        buf = b"".join(prepared[i] for i in pickles)
        starts = np.cumsum([0] + [len(prepared[i]) for i in pickles[:-1]]).tolist()
        scans = [_scan(buf, p) for p in starts]
        read = [s for s in scans if s is not None]
        graphs = iter(self._graphs(buf, read)) if read else iter(())
        out = list(prepared)
        for i, scan in zip(pickles, scans):
            out[i] = next(graphs) if scan is not None else safely(self, Chem.Mol(prepared[i]))
        return out

    def _graphs(self, buf: bytes, scans: list) -> list[GraphArrays]:
        """GraphArrays of every scanned pickle: views into chunk-wide arrays."""
        data = np.frombuffer(buf, dtype=np.uint8)
        atom_counts = np.array([len(s[0]) for s in scans])
        bond_counts = np.array([len(s[1]) for s in scans])
        node_ptr = np.concatenate([[0], np.cumsum(atom_counts)])
        bond_ptr = np.concatenate([[0], np.cumsum(bond_counts)])
        atoms = _atom_fields(data, np.array([q for s in scans for q in s[0]], dtype=np.int64))
        bonds = _bond_fields(data, np.array([q for s in scans for q in s[1]], dtype=np.int64))
        total = int(node_ptr[-1])
        shift = np.repeat(node_ptr[:-1], bond_counts)
        begin, end = bonds["begin"] + shift, bonds["end"] + shift
        rings = [
            np.frombuffer(r, np.uint8).astype(np.int64) + node_ptr[k]
            for k, s in enumerate(scans)
            for r in s[2]
        ]
        ring_atoms, ring_bonds = _ring_members(rings, total)
        atoms["degree"] = np.bincount(np.concatenate([begin, end]), minlength=total) + atoms["num_hs"]
        atoms["in_ring"] = np.zeros(total, np.int64)
        atoms["in_ring"][ring_atoms] = 1
        keys = np.minimum(begin, end) * total + np.maximum(begin, end)
        bonds["bond_in_ring"] = np.isin(keys, ring_bonds).astype(np.int64)
        x = np.stack([lookup(atoms[name]) for name, lookup in self._atoms], axis=1)
        attr = np.repeat(np.stack([lookup(bonds[name]) for name, lookup in self._bonds], axis=1), 2, axis=0)
        edges = np.empty((2, 2 * len(begin)), dtype=np.int64)
        edges[0, 0::2] = edges[1, 1::2] = bonds[
            "begin"
        ]  # bond k: edges 2k (begin -> end), 2k + 1 (end -> begin)
        edges[0, 1::2] = edges[1, 0::2] = bonds["end"]
        return [
            GraphArrays(x[n0:n1], edges[:, 2 * b0 : 2 * b1], attr[2 * b0 : 2 * b1])
            for n0, n1, b0, b1 in zip(node_ptr[:-1], node_ptr[1:], bond_ptr[:-1], bond_ptr[1:])
        ]

    @property
    def usable(self) -> bool:
        """Whether this RDKit's pickles give ``MolFeaturizer``'s arrays on REFERENCE_SMILES (once a process)."""
        return _agrees(self.spec)


@lru_cache(maxsize=8)
def _agrees(spec: FeaturizerSpec) -> bool:
    featurizer = PickledFeaturizer(spec)
    mols = [Chem.MolFromSmiles(s) for s in REFERENCE_SMILES]
    fast = featurizer.finish([featurizer.prepare(m) for m in mols])
    same = all(
        np.array_equal(a.x, b.x)
        and np.array_equal(a.edge_index, b.edge_index)
        and np.array_equal(a.edge_attr, b.edge_attr)
        for a, b in zip(fast, (MolFeaturizer.__call__(featurizer, m) for m in mols))
    )
    if not same:
        log.warning(
            "RDKit %s pickles differ from what molgnn reads; featurizing with RDKit's getters",
            Chem.rdBase.rdkitVersion,
        )
    return same
