"""Graph constructions (docs/graphs.md): known node/edge counts on hand-drawn molecules, the edge-pair
invariant, spec fields and fingerprints, the ``graph`` config group, and a tiny training run per construction
whose checkpoint predicts through the same construction and refuses another."""

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from rdkit import Chem
from torch_geometric.data import Batch

from conftest import FIXTURES
from molgnn.checkpoint import export_encoder, load_encoder
from molgnn.errors import CheckpointError
from molgnn.featurize import FeaturizerSpec, default_spec, smiles_to_arrays, smiles_to_graph
from molgnn.featurize.constructions import CONSTRUCTIONS, RING_KINDS, construction_spec
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.storage import load_torch

FIXTURE_SMILES = pd.read_csv(FIXTURES / "esol_small.csv")["smiles"].tolist()
EDGE_CASES = [
    "C",
    "[Na+].[Cl-]",
    "O",
    "[H][H]",
    "C#N",
    "C1CC1",
    "C[C@H](N)C(=O)O",
    "F/C=C/F",
    "c1ccc2ccccc2c1",
]


def arrays(smiles: str, construction: str):
    out = smiles_to_arrays(smiles, construction_spec(construction))
    assert not isinstance(out, Exception) and hasattr(out, "x"), out
    return out


def column(spec: FeaturizerSpec, graph, name: str, edges: bool = False) -> list:
    """The vocabulary values of one feature column (None for the unknown bucket)."""
    vocabs = spec.bond_features if edges else spec.atom_features
    i = [f.name for f in vocabs].index(name)
    values = vocabs[i].values
    rows = graph.edge_attr if edges else graph.x
    return [values[v] if v < len(values) else None for v in rows[:, i].tolist()]


def test_atoms_is_todays_spec_and_fingerprint():
    spec = construction_spec("atoms")
    assert spec == default_spec() and "construction" not in spec.to_dict()
    assert spec.fingerprint() == "d934dbab9287fe30"  # molgnn v1's fingerprint before constructions


@pytest.mark.parametrize("construction", sorted(set(CONSTRUCTIONS) - {"atoms"}))
def test_each_construction_is_a_named_versioned_part_of_the_spec(construction):
    spec = construction_spec(construction)
    d = spec.to_dict()
    assert d["construction"] == construction and d["construction_version"] == CONSTRUCTIONS[construction]
    assert FeaturizerSpec.from_dict(d) == spec and spec.fingerprint() != default_spec().fingerprint()
    assert any(line.startswith("construction: 'atoms' != ") for line in default_spec().diff(spec))
    with pytest.raises(ValueError, match="construction"):
        default_spec().require_equal(spec, "run")


def test_unknown_construction_or_version_is_refused_when_read(tmp_path):
    d = construction_spec("line_graph").to_dict()
    with pytest.raises(ValueError, match="'line_graph' v2: molgnn builds v1"):
        FeaturizerSpec.from_dict({**d, "construction_version": 2})
    with pytest.raises(ValueError, match="'rings_as_edges' unknown"):
        FeaturizerSpec.from_dict({**d, "construction": "rings_as_edges"})
    path = export_encoder(DMPNNEncoder(construction_spec("line_graph"), hidden_dim=8), tmp_path / "enc.pt")
    blob = load_torch(path)
    blob["molgnn"]["spec"]["construction_version"] = 2  # graphs of a later molgnn: never fed v1 graphs
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="construction"):
        load_encoder(path)


def test_explicit_hydrogens():
    g = arrays("CCO", "explicit_h")
    assert g.x.shape[0] == 9 and g.edge_index.shape[1] == 16  # 3 heavy atoms + 6 H; 8 bonds
    assert column(construction_spec("explicit_h"), g, "atomic_num").count(1) == 6
    assert arrays("C", "explicit_h").x.shape[0] == 5


def test_kekule_bonds():
    spec = construction_spec("kekule")
    g = arrays("c1ccccc1", "kekule")
    types = column(spec, g, "bond_type", edges=True)[0::2]
    assert sorted(types) == ["DOUBLE"] * 3 + ["SINGLE"] * 3
    assert set(column(spec, g, "aromatic")) == {False}
    aromatic = arrays("c1ccccc1", "atoms")
    assert set(column(default_spec(), aromatic, "bond_type", edges=True)) == {"AROMATIC"}


def test_minimal_features():
    spec = construction_spec("minimal")
    g = arrays("C[C@H](N)C(=O)O", "minimal")
    assert g.x.shape == (6, 2) and g.edge_attr.shape == (10, 1)
    assert [f.name for f in spec.atom_features] == ["atomic_num", "chirality"]
    assert [f.name for f in spec.bond_features] == ["bond_type"]
    assert "CHI_TETRAHEDRAL_CW" in column(spec, g, "chirality") or "CHI_TETRAHEDRAL_CCW" in column(
        spec, g, "chirality"
    )


def test_line_graph():
    spec = construction_spec("line_graph")
    g = arrays("c1ccccc1", "line_graph")
    assert g.x.shape[0] == 6 and g.edge_index.shape[1] == 12  # 6 bonds; each atom joins its 2 bonds
    assert set(column(spec, g, "bond_type")) == {"AROMATIC"}  # node features are bond features
    assert set(column(spec, g, "atomic_num", edges=True)) == {6}  # edge features are the shared atom's
    assert spec.atom_vocab_sizes == default_spec().bond_vocab_sizes
    assert spec.bond_vocab_sizes == default_spec().atom_vocab_sizes
    g = arrays("CC(C)C", "line_graph")  # isobutane: 3 bonds on one atom -> 3 pairs
    assert g.x.shape[0] == 3 and g.edge_index.shape[1] == 6
    methane = arrays("C", "line_graph")  # no bond: one featureless node, a self-loop carrying the carbon
    assert methane.x.shape[0] == 1 and methane.edge_index.tolist() == [[0, 0], [0, 0]]
    assert column(spec, methane, "bond_type") == [None]
    assert column(spec, methane, "atomic_num", edges=True) == [6, 6]
    salt = arrays("[Na+].[Cl-]", "line_graph")  # each ion kept
    assert salt.x.shape[0] == 2 and sorted(column(spec, salt, "atomic_num", edges=True)) == [11, 11, 17, 17]


def test_motifs():
    spec = construction_spec("motifs")
    g = arrays("c1ccc2ccccc2c1", "motifs")
    assert g.x.shape[0] == 12  # 10 atoms + 2 ring nodes
    assert g.edge_index.shape[1] == 2 * 11 + 2 * (6 + 6)  # 11 bonds, 6 + 6 links
    kinds = column(spec, g, "node_kind")
    assert kinds == ["atom"] * 10 + ["ring6", "ring6"]
    assert column(spec, g, "aromatic")[10:] == [True, True]
    assert column(spec, g, "bond_type", edges=True)[22:] == ["MOTIF"] * 24
    assert int(g.edge_index[:, 22:].max()) == 11 and set(g.edge_index[0, 22::2].tolist()) == {10, 11}
    acid = arrays("CC(=O)O", "motifs")  # acetic acid: one carboxylic-acid node over C, =O, O
    assert column(spec, acid, "node_kind")[4:] == ["carboxylic_acid"]
    assert acid.edge_index.shape[1] == 2 * 3 + 2 * 3
    rings_only = construction_spec("motifs", groups=[])
    assert rings_only.atom_features[0].values == ("atom", *RING_KINDS) and rings_only != spec
    assert smiles_to_arrays("CC(=O)O", rings_only).x.shape[0] == 4
    assert arrays("C", "motifs").x.shape[0] == 1
    with pytest.raises(ValueError, match="unknown"):
        construction_spec("motifs", groups=["nope"])


@pytest.mark.parametrize("construction", sorted(CONSTRUCTIONS))
def test_every_construction_keeps_edge_pairs_and_vocabularies(construction):
    spec = construction_spec(construction)
    for smiles in FIXTURE_SMILES + EDGE_CASES:
        g = arrays(smiles, construction)
        e = g.edge_index
        assert e.shape[1] % 2 == 0 and g.edge_attr.shape[0] == e.shape[1] and g.x.shape[0] >= 1, smiles
        assert np.array_equal(e[0, 0::2], e[1, 1::2]) and np.array_equal(e[1, 0::2], e[0, 1::2]), smiles
        assert np.array_equal(g.edge_attr[0::2], g.edge_attr[1::2]), smiles  # a pair shares its features
        assert e.size == 0 or e.max() < g.x.shape[0]
        assert (g.x < np.array(spec.atom_vocab_sizes)).all() and (g.x >= 0).all()
        assert (g.edge_attr < np.array(spec.bond_vocab_sizes)).all() and (g.edge_attr >= 0).all()


def test_kekulizing_leaves_the_callers_molecule_aromatic():
    from molgnn.featurize.graph import mol_to_arrays

    mol = Chem.MolFromSmiles("c1ccccc1")
    mol_to_arrays(mol, construction_spec("kekule"))
    assert mol.GetAtomWithIdx(0).GetIsAromatic()


@pytest.mark.parametrize("construction", sorted(CONSTRUCTIONS))
@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_both_encoder_families_run_on_every_construction(family, construction):
    spec = construction_spec(construction)
    batch = Batch.from_data_list([smiles_to_graph(s, spec) for s in ["C", "CCO", "c1ccccc1O", "[Na+].[Cl-]"]])
    h = family(spec, hidden_dim=8, num_layers=2)(batch)
    assert h.shape == (4, 8) and torch.isfinite(h).all()


def test_graph_config_group_selects_the_spec(compose):
    assert instantiate(compose("train").featurizer) == default_spec()
    for name in ("train", "pretrain", "embed", "diagnose"):
        for construction in ("explicit_h", "motifs"):
            cfg = compose(name, [f"graph={construction}"])
            assert instantiate(cfg.featurizer) == construction_spec(construction)
    cfg = compose("train", ["graph=line_graph"])
    assert instantiate(cfg.encoder).spec == construction_spec("line_graph")


@pytest.mark.parametrize("construction", sorted(set(CONSTRUCTIONS) - {"atoms"}))
def test_checkpoint_round_trip_and_refusal(train_tiny, construction):
    import molgnn

    run = train_tiny(f"graph-{construction}", f"graph={construction}", "uncertainty=none")
    best = run / "checkpoints" / "best.ckpt"
    spec = construction_spec(construction)
    model = molgnn.load(best)
    assert model.spec == spec
    written = pd.read_csv(run / "test_predictions.csv")
    again = model.predict(written["smiles"].tolist(), uncertainty=False)
    np.testing.assert_allclose(
        again["logS"].to_numpy(), written["logS_pred"].to_numpy(), rtol=1e-6, atol=1e-6
    )
    encoder = load_encoder(best, expect_spec=spec).eval()
    first = model.models[0].encoder.eval()
    batch = Batch.from_data_list([smiles_to_graph(s, spec) for s in written["smiles"]])
    assert torch.equal(encoder(batch), first(batch))  # bit-identical reload
    with pytest.raises(CheckpointError, match=f"construction: 'atoms' != '{construction}'"):
        load_encoder(best, expect_spec=default_spec())  # the run's spec says atoms, the file another
