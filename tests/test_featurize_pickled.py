"""The default spec's features read in bulk from RDKit pickles (``molgnn.featurize.pickled``) against
``MolFeaturizer``'s getters: the same arrays on every fixture molecule, the molecules it does not read sent
through the getters, and the self-check that turns it off when an RDKit's pickles read differently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

import molgnn.featurize.pickled as pickled
from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.featurize.graph import MolFeaturizer, _featurizer_for, chunk_featurizer
from molgnn.featurize.spec import default_spec

FIXTURES = Path(__file__).parent / "fixtures"
SMILES = (
    (FIXTURES / "featurize_reference.smi").read_text().split()
    + pd.read_csv(FIXTURES / "esol_small.csv").smiles.tolist()
    + pd.read_csv(FIXTURES / "pretrain_200.csv").SMILES.tolist()
)
NOT_READ = ["[CH3:1]C(=O)O", "C" * 300, "[*]CC"]  # an atom map number, > 255 atoms, a dummy atom


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x", "edge_index", "edge_attr"))


def _chunk(smiles: list[str]) -> tuple[list, list]:
    spec = default_spec()
    prepare, finish = chunk_featurizer(spec)
    mols = [parse_smiles(s) for s in smiles]
    return mols, finish([prepare(m) if m else m for m in mols])


def test_the_installed_rdkit_is_read_in_bulk():
    featurizer = _featurizer_for(default_spec())
    assert isinstance(featurizer, pickled.PickledFeaturizer) and featurizer.usable


def test_one_chunk_gives_the_getters_arrays_for_every_fixture_molecule():
    mols, graphs = _chunk(SMILES + NOT_READ + ["not a smiles"])
    getters = MolFeaturizer(default_spec())
    assert isinstance(graphs[-1], ParseFailure) and graphs[-1] is mols[-1]
    for smiles, mol, graph in zip(SMILES + NOT_READ, mols, graphs):
        assert _same(graph, getters(mol)), smiles


def test_what_the_scan_reads_and_what_it_leaves_to_the_getters():
    def scan(smiles):
        pickle = parse_smiles(smiles).ToBinary()
        return pickled._scan(pickle, 0)

    atoms, bonds, rings = scan("Cc1ccccc1/C=C/[O-]")
    assert (len(atoms), len(bonds), len(rings)) == (10, 10, 1) and sorted(rings[0]) == [1, 2, 3, 4, 5, 6]
    assert all(scan(s) is None for s in NOT_READ[:2])


def test_the_self_check_turns_the_bulk_reader_off_when_pickles_read_differently(monkeypatch):
    real = pickled._atom_fields

    def charges_lost(data, starts):
        return {**real(data, starts), "formal_charge": np.zeros(len(starts), np.int64)}

    monkeypatch.setattr(pickled, "_atom_fields", charges_lost)
    assert not pickled._agrees.__wrapped__(default_spec())
    monkeypatch.setattr(pickled, "_atom_fields", real)
    assert pickled._agrees.__wrapped__(default_spec())


@pytest.mark.parametrize("construction", ["explicit_h", "kekule"])
def test_other_constructions_keep_their_own_featurizer(construction):
    from dataclasses import replace

    spec = replace(default_spec(), construction=construction)
    assert not isinstance(_featurizer_for(spec), pickled.PickledFeaturizer)
    prepare, finish = chunk_featurizer(spec)
    graphs = finish([prepare(Chem.MolFromSmiles("CCO"))])
    assert graphs[0].x.shape[0] == (9 if construction == "explicit_h" else 3)
