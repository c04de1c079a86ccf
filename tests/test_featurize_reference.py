"""The compiled featurizer (MolFeaturizer: column-wise getters, lookup dicts, interleaved edges; and
``arrays_featurizer``, the spec resolved once) against a plain reference written the obvious way: one getter
call and one vocabulary scan per atom, bond and feature, on a committed fixture with stereo, charges, dative
bonds and odd elements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molgnn.featurize.graph import ATOM_GETTERS, BOND_GETTERS, arrays_featurizer, mol_to_arrays
from molgnn.featurize.spec import default_spec

FIXTURE = Path(__file__).parent / "fixtures" / "featurize_reference.smi"


def _index(vocab, to_code, value) -> int:
    codes = [to_code(v) for v in vocab.values]
    return codes.index(int(value)) if int(value) in codes else vocab.unknown_index


def reference_arrays(mol: Chem.Mol, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = [
        [_index(f, ATOM_GETTERS[f.name][1], ATOM_GETTERS[f.name][0](atom)) for f in spec.atom_features]
        for atom in mol.GetAtoms()
    ]
    edges, attrs = [], []
    for bond in mol.GetBonds():
        row = [_index(f, BOND_GETTERS[f.name][1], BOND_GETTERS[f.name][0](bond)) for f in spec.bond_features]
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edges += [(a, b), (b, a)]
        attrs += [row, row]
    return (
        np.array(x, dtype=np.int64).reshape(-1, len(spec.atom_features)),
        np.array(edges, dtype=np.int64).reshape(-1, 2).T,
        np.array(attrs, dtype=np.int64).reshape(-1, len(spec.bond_features)),
    )


SMILES = FIXTURE.read_text().split()


def test_fixture_covers_stereo_charges_and_odd_elements():
    mols = [Chem.MolFromSmiles(s) for s in SMILES]
    assert all(m is not None for m in mols)
    tags = {a.GetChiralTag() for m in mols for a in m.GetAtoms()}
    assert {Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW} <= tags
    assert {Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOZ} <= {
        b.GetStereo() for m in mols for b in m.GetBonds()
    }
    assert Chem.BondType.DATIVE in {b.GetBondType() for m in mols for b in m.GetBonds()}


@pytest.mark.parametrize("smiles", SMILES)
def test_fast_featurizer_matches_the_plain_reference(smiles):
    spec = default_spec()
    mol = Chem.MolFromSmiles(smiles)
    fast = arrays_featurizer(spec)(mol)
    assert np.array_equal(fast.x, mol_to_arrays(mol, spec).x)
    for got, want in zip((fast.x, fast.edge_index, fast.edge_attr), reference_arrays(mol, spec)):
        assert got.dtype == np.int64 and got.flags.c_contiguous
        assert got.shape == want.shape and np.array_equal(got, want), smiles


@pytest.mark.slow
def test_every_bundled_molecule_matches_the_plain_reference():
    """Every parsable SMILES of data/moleculenet/*.csv and data/adme_fang2023/*.csv (about 19,600)."""
    import pandas as pd

    from molgnn.chem.parse import parse_smiles

    spec = default_spec()
    featurize = arrays_featurizer(spec)
    data = Path(__file__).parents[1] / "data"
    paths = sorted([*data.glob("moleculenet/*.csv"), *data.glob("adme_fang2023/*.csv")])
    checked = 0
    for path in paths:
        for smiles in pd.read_csv(path)["smiles"]:
            mol = parse_smiles(smiles)
            if not mol:
                continue
            fast = featurize(mol)
            for got, want in zip((fast.x, fast.edge_index, fast.edge_attr), reference_arrays(mol, spec)):
                assert got.dtype == np.int64 and np.array_equal(got, want), (path.name, smiles)
            checked += 1
    assert checked > 19000
