"""Chemprop v2's default molecule featurization (chemprop 2.3.1, ``featurizers/atom.py``, ``bond.py``,
``molgraph/molecule.py``), as a molgnn spec with ``engine="chemprop"``.

Facts of Chemprop's ``SimpleMoleculeMolGraphFeaturizer`` reproduced here (molecule from
``Chem.MolFromSmiles`` with its defaults, implicit hydrogens, as molgnn's parser gives it):

- atoms (``MultiHotAtomFeaturizer``): one-hot blocks, each with a trailing "unknown" slot, for atomic number,
  total degree (0..5), formal charge in the order (-1, -2, 1, 2, 0), chiral tag (0..3), total hydrogens
  (0..4) and hybridization; then aromatic (0/1) and ``0.01 * atom.GetMass()`` (the isotope's mass when one is
  set), computed in float64 and stored as float32 (``np.single``). Modes: V2 (the default: Z 1..36 and 53,
  hybridization S/SP/SP2/SP2D/SP3/SP3D/SP3D2, 72 features), V1 (Z 1..100, SP..SP3D2, 133), ORGANIC (44);
- bonds (``MultiHotBondFeaturizer``, 14 features): a "null bond" bit (always 0 for real bonds), bond type
  SINGLE/DOUBLE/TRIPLE/AROMATIC (an unknown type sets no bit: its would-be slot is overwritten by the
  conjugation bit), conjugated, in ring, stereo 0..5 + unknown; bond k gives edges 2k (begin->end) and
  2k+1 (end->begin), the reverse of edge e is e ^ 1.

molgnn graphs carry long columns: each one-hot block travels as its index (unknown bucket = Chemprop's
unknown slot), the 0/1 flags as themselves and the mass as its float32 bit pattern (lossless; Chemprop's
own tensors are float32). ``chemprop_inputs`` turns them back into Chemprop's float matrices.
"""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem

from molgnn.featurize.graph import GraphArrays, MolFeaturizer
from molgnn.featurize.spec import FeatureVocab, FeaturizerSpec

CHIRAL_TAGS = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")  # codes 0..3
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
BOND_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")  # codes 0..5
ATOMIC_NUMS = {
    "V2": (*range(1, 37), 53),
    "V1": tuple(range(1, 101)),
    "ORGANIC": (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 35, 53),
}
HYBRIDIZATIONS = {
    "V2": ("S", "SP", "SP2", "SP2D", "SP3", "SP3D", "SP3D2"),
    "V1": ("SP", "SP2", "SP3", "SP3D", "SP3D2"),
    "ORGANIC": ("S", "SP", "SP2", "SP3"),
}
MODES = tuple(ATOMIC_NUMS)
FLAGS = ("aromatic", "conjugated", "bond_in_ring")  # 0/1 columns that Chemprop stores as one float
BOND_FDIM = 14


def _flag(name: str) -> FeatureVocab:
    return FeatureVocab(name, (False, True), unknown=0)


def chemprop_spec(mode: str = "V2") -> FeaturizerSpec:
    """Chemprop's multi-hot featurization in ``mode`` (V2, V1, ORGANIC): 8 atom columns, 4 bond columns."""
    mode = mode.upper()
    if mode not in MODES:
        raise ValueError(
            f"Chemprop atom featurizer mode {mode!r} is not supported; supported: {', '.join(MODES)}"
        )
    atoms = (
        FeatureVocab("atomic_num", ATOMIC_NUMS[mode]),
        FeatureVocab("degree", tuple(range(6))),
        FeatureVocab("formal_charge", (-1, -2, 1, 2, 0)),
        FeatureVocab("chirality", CHIRAL_TAGS),
        FeatureVocab("num_hs", tuple(range(5))),
        FeatureVocab("hybridization", HYBRIDIZATIONS[mode]),
        _flag("aromatic"),
        FeatureVocab("mass", (), encoding="float32"),
    )
    bonds = (
        FeatureVocab("bond_type", BOND_TYPES),
        _flag("conjugated"),
        _flag("bond_in_ring"),
        FeatureVocab("stereo", BOND_STEREO),
    )
    return FeaturizerSpec(
        name=f"chemprop_{mode.lower()}",
        version=1,
        atom_features=atoms,
        bond_features=bonds,
        engine="chemprop",
    )


def atom_fdim(spec: FeaturizerSpec) -> int:
    """Width of Chemprop's atom feature vector for ``spec`` (72 for V2)."""
    return sum(1 if f.name in FLAGS or f.encoding else f.size for f in spec.atom_features)


def mode_for_widths(d_v: int, d_e: int) -> str:
    """The featurizer mode whose atom / bond widths are (d_v, d_e); a ``ValueError`` when none is (extra atom
    or bond features, or a featurizer molgnn does not reproduce)."""
    found = [m for m in MODES if atom_fdim(chemprop_spec(m)) == d_v]
    if d_e != BOND_FDIM or not found:
        known = ", ".join(f"{m} {atom_fdim(chemprop_spec(m))}" for m in MODES)
        raise ValueError(
            f"atom/bond feature widths {d_v}/{d_e} match no Chemprop featurizer molgnn reproduces "
            f"(atom widths: {known}; bond width {BOND_FDIM}); extra atom or bond features are "
            "not supported"
        )
    return found[0]


def encode_float32(values: np.ndarray) -> np.ndarray:
    """float array -> its float32 bit patterns as int64 in [0, 2**32) (rounded as ``np.single`` rounds)."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).view(np.uint32).astype(np.int64)


def decode_float32(columns: torch.Tensor) -> torch.Tensor:
    """float32 bit-pattern columns, long [..., K] in [0, 2**32) -> float32 [..., K], exactly."""
    bits = torch.where(columns >= 1 << 31, columns - (1 << 32), columns)
    return bits.to(torch.int32).view(torch.float32)


class ChempropFeaturizer:
    """The ``engine="chemprop"`` featurizer: ``featurizer(mol) -> GraphArrays`` with x long [N, 8] and
    edge_attr long [E, 4] (columns as in ``chemprop_spec``). The categorical columns are molgnn's own
    getters (``MolFeaturizer``); the mass column is added here."""

    def __init__(self, spec: FeaturizerSpec):
        *categorical, mass = spec.atom_features
        if mass.encoding != "float32" or spec.engine != "chemprop":
            raise ValueError(f"spec {spec.name!r} is not a Chemprop spec (last atom column must be the mass)")
        self.spec = spec
        self._graph = MolFeaturizer(
            FeaturizerSpec(spec.name, spec.version, tuple(categorical), spec.bond_features)
        )

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        g = self._graph(mol)
        mass = encode_float32([0.01 * mol.GetAtomWithIdx(i).GetMass() for i in range(mol.GetNumAtoms())])
        x = np.concatenate([g.x, mass.reshape(-1, 1)], axis=1)
        return GraphArrays(np.ascontiguousarray(x), g.edge_index, g.edge_attr)


def chemprop_inputs(
    spec: FeaturizerSpec, x: torch.Tensor, edge_attr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """molgnn columns -> Chemprop's inputs: V float32 [N, d_v] (72 for V2) and E float32 [E, 14]."""
    atoms = []
    for i, f in enumerate(spec.atom_features):
        if f.encoding == "float32":
            atoms.append(decode_float32(x[:, i : i + 1]))
        elif f.name in FLAGS:
            atoms.append(x[:, i : i + 1].float())
        else:
            atoms.append(torch.nn.functional.one_hot(x[:, i], f.size).float())
    onehot = torch.nn.functional.one_hot
    bt, conj, ring, stereo = edge_attr.unbind(1)
    bonds = [
        torch.zeros_like(conj, dtype=torch.float32).unsqueeze(1),  # the "null bond" bit
        onehot(bt, len(BOND_TYPES) + 1)[:, : len(BOND_TYPES)].float(),  # unknown type: no bit (see above)
        conj.float().unsqueeze(1),
        ring.float().unsqueeze(1),
        onehot(stereo, len(BOND_STEREO) + 1).float(),
    ]
    return torch.cat(atoms, dim=1), torch.cat(bonds, dim=1)
