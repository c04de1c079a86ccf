"""MiniMol's input featurization (graphium 2.4.7, as configured in ``minimol/ckpts/minimol_v1/config.yaml``).

Re-written from the behaviour of graphium's ``features/featurizer.py``, ``spectral.py``, ``rw.py`` and
``nmp.py`` (Apache-2.0) and datamol 0.12.5's ``to_mol(ordered=True)``; checked bit for bit against the inputs
graphium itself built (``tests/fixtures/minimol``). Per molecule:

- atoms renumbered by RDKit's canonical ranking (ties broken, chirality and isotopes included), then
  hydrogens removed;
- atom features (85 floats): total degree - 2, formal charge, radical electrons, aromatic, in ring, then
  one-hots each with a trailing "other" slot: element over graphium's 43 symbols (44), periodic group 1..19
  (20; lanthanides/actinides are 19), period 1..7 (8), total valence 0..6 (8);
- bond features (13): type SINGLE/DOUBLE/TRIPLE/AROMATIC + other, stereo (6 + other), in ring; each bond
  gives edges 2k (begin->end) and 2k+1 (end->begin) with the same features;
- Laplacian L = D - A per connected component, eigenpairs from the general (non-symmetric) LAPACK solver
  (``scipy.linalg.eig``), the first 8 by eigenvalue, zero padded, columns scaled to unit norm, eigenvalues
  repeated per node; random-walk return probabilities diag((D^-1 A)^k), k = 1..16, in float32;
- everything rounded to float16 (graphium's storage type) and widened to float32 by the model.

molgnn graphs carry long columns, so the continuous values travel as float16 bit patterns
(``FeatureVocab(encoding="float16")``) and the one-hots as vocabulary indices (the unknown bucket is the
"other" slot): ``x`` long [N, 41] = 5 floats, 4 indices, 8 eigenvector, 8 eigenvalue and 16 random-walk
columns; ``edge_attr`` long [E, 3] = bond type, stereo indices and the in-ring float.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp
import torch
from rdkit import Chem
from scipy.linalg import eig

from molgnn.featurize.graph import GraphArrays
from molgnn.featurize.spec import FeatureVocab, FeaturizerSpec

# graphium/features/nmp.py ATOM_LIST (order matters: it is the one-hot order)
ELEMENTS = (
    "C",
    "N",
    "O",
    "S",
    "F",
    "Si",
    "P",
    "Cl",
    "Br",
    "Mg",
    "Na",
    "Ca",
    "Fe",
    "As",
    "Al",
    "I",
    "B",
    "V",
    "K",
    "Tl",
    "Yb",
    "Sb",
    "Sn",
    "Ag",
    "Pd",
    "Co",
    "Se",
    "Ti",
    "Zn",
    "H",
    "Li",
    "Ge",
    "Cu",
    "Au",
    "Ni",
    "Cd",
    "In",
    "Mn",
    "Zr",
    "Cr",
    "Pt",
    "Hg",
    "Pb",
)
# periodic group and period of Z = 1..118 (graphium/features/periodic_table.csv; a missing group is 19).
# graphium indexes these with Z - 1, so Z = 0 (a '*' atom) reads Z = 118's row.
_F_BLOCK = (19,) * 14
GROUP_OF_Z = (
    (1, 18) + (1, 2, *range(13, 19)) * 2 + tuple(range(1, 19)) * 2 + (1, 2, 3, *_F_BLOCK, *range(4, 19)) * 2
)
PERIOD_OF_Z = (1,) * 2 + (2,) * 8 + (3,) * 8 + (4,) * 18 + (5,) * 18 + (6,) * 32 + (7,) * 32
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
BOND_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")
ATOM_FLOATS = ("degree_minus_2", "formal_charge", "radical_electrons", "aromatic", "in_ring")
NUM_EIG, RW_STEPS = 8, 16


def _f16(name: str) -> FeatureVocab:
    return FeatureVocab(name, (), encoding="float16")


def minimol_spec() -> FeaturizerSpec:
    """MiniMol v1's featurization: 41 atom columns (85 features + 32 positional values), 3 bond columns."""
    atoms = (
        *(_f16(n) for n in ATOM_FLOATS),
        FeatureVocab("element_symbol", ELEMENTS),
        FeatureVocab("periodic_group", tuple(range(1, 20))),
        FeatureVocab("period", tuple(range(1, 8))),
        FeatureVocab("total_valence", tuple(range(7))),
        *(_f16(f"laplacian_eigvec_{i}") for i in range(NUM_EIG)),
        *(_f16(f"laplacian_eigval_{i}") for i in range(NUM_EIG)),
        *(_f16(f"rw_return_prob_{k}") for k in range(1, RW_STEPS + 1)),
    )
    bonds = (
        FeatureVocab("bond_type", BOND_TYPES),
        FeatureVocab("bond_stereo", BOND_STEREO),
        _f16("bond_in_ring"),
    )
    return FeaturizerSpec(
        name="minimol", version=1, atom_features=atoms, bond_features=bonds, engine="graphium"
    )


def encode_float16(values: np.ndarray) -> np.ndarray:
    """float array -> its float16 bit patterns as int64 (the rounding graphium's float16 storage does)."""
    return np.asarray(values, dtype=np.float16).view(np.uint16).astype(np.int64)


def decode_float16(columns: torch.Tensor) -> torch.Tensor:
    """float16 bit-pattern columns, long [..., K] in [0, 65536) -> float32 [..., K], exactly."""
    bits = columns.to(torch.int32)
    return torch.where(bits >= 1 << 15, bits - (1 << 16), bits).to(torch.int16).view(torch.float16).float()


def canonical_heavy_atoms(mol: Chem.Mol) -> Chem.Mol:
    """datamol ``to_mol(ordered=True)`` then ``RemoveHs``: atom i of the result has canonical rank i."""
    if mol.GetNumAtoms():
        ranks = Chem.CanonicalRankAtoms(mol, breakTies=True, includeChirality=True, includeIsotopes=True)
        mol = Chem.RenumberAtoms(mol, [i for _, i in sorted((r, i) for i, r in enumerate(ranks))])
    return Chem.RemoveHs(mol)


def _index(value, vocab: tuple) -> int:
    """Vocabulary index of ``value``, or the trailing "other" slot (``len(vocab)``)."""
    try:
        return vocab.index(value)
    except ValueError:
        return len(vocab)


def atom_columns(mol: Chem.Mol) -> np.ndarray:
    """long [N, 9]: the 5 float features (float16 bits) and the 4 one-hot indices, graphium's order."""
    floats, cats = [], []
    for i in range(mol.GetNumAtoms()):
        a = mol.GetAtomWithIdx(i)
        z = a.GetAtomicNum()
        floats.append(
            (
                a.GetTotalDegree() - 2,
                a.GetFormalCharge(),
                a.GetNumRadicalElectrons(),
                a.GetIsAromatic(),
                a.IsInRing(),
            )
        )
        cats.append(
            (
                _index(a.GetSymbol(), ELEMENTS),
                _index(GROUP_OF_Z[z - 1], tuple(range(1, 20))),
                _index(PERIOD_OF_Z[z - 1], tuple(range(1, 8))),
                _index(a.GetTotalValence(), tuple(range(7))),
            )
        )
    floats = np.asarray(floats, dtype=np.float64).reshape(-1, len(ATOM_FLOATS))
    return np.concatenate([encode_float16(floats), np.asarray(cats, dtype=np.int64).reshape(-1, 4)], axis=1)


def bond_columns(mol: Chem.Mol) -> np.ndarray:
    """long [B, 3]: bond type index, stereo index, in-ring (float16 bits), one row per bond."""
    rows = [
        (
            _index(str(b.GetBondType()), BOND_TYPES),
            _index(str(b.GetStereo()), BOND_STEREO),
            int(encode_float16(np.float64(b.IsInRing()))),
        )
        for b in (mol.GetBondWithIdx(k) for k in range(mol.GetNumBonds()))
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _eigenpairs(lap: np.ndarray, num_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """General eigen solver on a dense Laplacian block; first ``num_pos`` pairs by eigenvalue (complex sort
    order), padded with inf eigenvalues / zero vectors, columns divided by max(norm, 1e-4)."""
    vals, vecs = eig(lap)
    n = lap.shape[0]
    if num_pos > n:
        vals = np.concatenate([vals, np.full(num_pos - n, np.inf)])
        vecs = np.concatenate([vecs, np.zeros((n, num_pos - n))], axis=1)
    order = vals.argsort()
    vals, vecs = vals[order][:num_pos], vecs[:, order][:, :num_pos]
    vecs = vecs / np.maximum(np.sqrt(np.sum(vecs**2, axis=0, keepdims=True)), 1e-4)
    vals[~np.isfinite(vals)] = 0.0
    vecs[~np.isfinite(vecs)] = 0.0
    return vals, vecs


def laplacian_pe(adj: sp.coo_matrix, num_pos: int = NUM_EIG) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors float32 [N, num_pos] and eigenvalues repeated per node float32 [N, num_pos] of L = D - A,
    per connected component (components and their node order as networkx gives them, as graphium does)."""
    adj = adj.astype(np.float64)
    n = adj.shape[0]
    lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    components = list(nx.connected_components(nx.from_scipy_sparse_array(adj)))
    if len(components) == 1:
        vals, vecs = _eigenpairs(lap.todense(), num_pos)
        return np.real(vecs).astype(np.float32), np.real(np.repeat(vals[None], n, axis=0)).astype(np.float32)
    vals_all = np.zeros((n, num_pos), dtype=np.complex64)
    vecs_all = np.zeros((n, num_pos), dtype=np.complex64)
    lap = sp.csr_matrix(lap)
    for component in components:
        comp = list(component)
        vals, vecs = _eigenpairs(lap[comp][:, comp].todense(), num_pos)
        vals_all[comp, :] = vals[None]
        vecs_all[comp, :] = vecs
    return np.real(vecs_all).astype(np.float32), np.real(vals_all).astype(np.float32)


def rw_return_probs(edge_index: np.ndarray, n: int, steps: int = RW_STEPS) -> np.ndarray:
    """float32 [N, steps]: diag(P^k), P = D^-1 A, k = 1..steps, products in float32.

    graphium multiplies with torch (MKL); torch must not run in molgnn's forked featurization workers (MKL's
    OpenMP pool deadlocks there), so this uses numpy's float32 matmul: after float16 rounding it equals
    graphium's values on the reference molecules and on 650,670 of 650,672 values of 1,500 Lipophilicity
    molecules (2 differ by one float16 ulp)."""
    if n == 1:
        return np.ones((1, steps), dtype=np.float32)
    if edge_index.shape[1] == 0:
        return np.zeros((n, steps), dtype=np.float32)
    adj = np.zeros((n, n), dtype=np.float32)
    adj[edge_index[0], edge_index[1]] = 1.0
    deg = adj.sum(axis=1)
    deg_inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0).astype(np.float32)
    p = deg_inv[:, None] * adj
    pk, out = p, []
    for _ in range(steps):
        out.append(np.diagonal(pk).copy())
        pk = pk @ p
    return np.stack(out, axis=-1).astype(np.float32)


class GraphiumFeaturizer:
    """The ``engine="graphium"`` featurizer: ``featurizer(mol) -> GraphArrays`` with x long [N, 41] and
    edge_attr long [E, 3] (columns as in ``minimol_spec()``)."""

    def __init__(self, spec: FeaturizerSpec):
        expected = minimol_spec()
        expected.require_equal(
            spec, f"the graphium featurizer computes only the {expected.name!r} spec; differences", ValueError
        )
        self.spec = spec

    def __call__(self, mol: Chem.Mol) -> GraphArrays:
        mol = canonical_heavy_atoms(mol)
        n = mol.GetNumAtoms()
        bonds = [mol.GetBondWithIdx(k) for k in range(mol.GetNumBonds())]
        edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
        edge_index[0, 0::2] = edge_index[1, 1::2] = [b.GetBeginAtomIdx() for b in bonds]
        edge_index[0, 1::2] = edge_index[1, 0::2] = [b.GetEndAtomIdx() for b in bonds]
        adj = sp.coo_matrix(
            (np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(n, n)
        )  # graphium: float16 ones
        vecs, vals = laplacian_pe(adj)
        rw = rw_return_probs(edge_index, n)
        x = np.concatenate(
            [atom_columns(mol), encode_float16(vecs), encode_float16(vals), encode_float16(rw)], axis=1
        )
        return GraphArrays(np.ascontiguousarray(x), edge_index, np.repeat(bond_columns(mol), 2, axis=0))
