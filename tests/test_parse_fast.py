"""``parse_smiles`` builds its molecule without ``MolFromSmiles``'s second sanitization (``chem.parse._sanitized``):
the molecule must be the one ``Chem.MolFromSmiles`` gives, atom for atom, on every fixture SMILES, including
those with hydrogen atoms, stereo and CXSMILES extensions, and a SMILES RDKit refuses is still refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rdkit import Chem

from molgnn.chem.parse import ParseFailure, parse_smiles

FIXTURES = Path(__file__).parent / "fixtures"
SMILES = (
    (FIXTURES / "featurize_reference.smi").read_text().split()
    + pd.read_csv(FIXTURES / "esol_small.csv").smiles.tolist()
    + pd.read_csv(FIXTURES / "pretrain_200.csv").SMILES.tolist()
    + ["[H]N=c1sccn1C", "[H]C([H])([H])[H]", "C[C@H](O)CC |&1:1|", "C/C=C/C |c:1|", "F/C=C(/Cl)Br"]
)


def _atoms(mol: Chem.Mol) -> list[tuple]:
    return [
        (a.GetAtomicNum(), a.GetFormalCharge(), a.GetTotalNumHs(), a.GetChiralTag(), a.GetHybridization(),
         a.GetIsAromatic(), a.IsInRing(), a.GetTotalDegree(), a.GetNumRadicalElectrons(), a.GetIsotope())
        for a in mol.GetAtoms()
    ]  # fmt: skip


def _bonds(mol: Chem.Mol) -> list[tuple]:
    return [
        (b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType(), b.GetIsConjugated(), b.IsInRing(),
         b.GetStereo(), b.GetBondDir())
        for b in mol.GetBonds()
    ]  # fmt: skip


def _groups(mol: Chem.Mol) -> list:
    return [(g.GetGroupType(), [a.GetIdx() for a in g.GetAtoms()]) for g in mol.GetStereoGroups()]


def test_the_molecule_is_rdkits():
    different = []
    for smiles in SMILES:
        expected, got = Chem.MolFromSmiles(smiles), parse_smiles(smiles)
        assert expected is not None and not isinstance(got, ParseFailure), smiles
        same = Chem.MolToSmiles(got) == Chem.MolToSmiles(expected)
        same &= _atoms(got) == _atoms(expected) and _bonds(got) == _bonds(expected)
        same &= _groups(got) == _groups(expected)
        different += [] if same else [smiles]
    assert not different


@pytest.mark.parametrize("smiles", ["C1CC", "c1cccc1", "C(C)(C)(C)(C)C", "[Xx]"])
def test_what_rdkit_refuses_is_refused(smiles):
    assert Chem.MolFromSmiles(smiles) is None
    assert isinstance(parse_smiles(smiles), ParseFailure)
