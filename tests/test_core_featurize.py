"""Featurizer: golden tensors, unknown buckets, spec serialization and diffs."""

import torch

from molgnn.chem import ParseFailure, parse_smiles
from molgnn.featurize import FeatureVocab, FeaturizerSpec, default_spec, smiles_to_graph
from molgnn.featurize.spec import spec_dict_diff


def test_alanine_golden_tensors():
    g = smiles_to_graph("C[C@H](N)C(=O)O", default_spec())
    # columns: atomic_num-1, degree, charge, chirality, num_hs, hybridization, aromatic, in_ring
    assert g.x.tolist() == [
        [5, 4, 2, 0, 3, 3, 0, 0],
        [5, 4, 2, 2, 1, 3, 0, 0],
        [6, 3, 2, 0, 2, 3, 0, 0],
        [5, 3, 2, 0, 0, 2, 0, 0],
        [7, 1, 2, 0, 0, 2, 0, 0],
        [7, 2, 2, 0, 1, 2, 0, 0],
    ]
    assert g.edge_index.tolist() == [[0, 1, 1, 2, 1, 3, 3, 4, 3, 5], [1, 0, 2, 1, 3, 1, 4, 3, 5, 3]]
    # bond_type, conjugated, in_ring, stereo; each bond twice (both directions)
    assert g.edge_attr.tolist()[6] == [1, 1, 0, 0]  # C=O double, conjugated
    assert g.x.dtype == g.edge_index.dtype == g.edge_attr.dtype == torch.long


def test_aromatic_ring_and_reverse_edges():
    g = smiles_to_graph("c1ccccc1", default_spec())
    assert g.x[:, 6].tolist() == [1] * 6 and g.x[:, 7].tolist() == [1] * 6
    assert g.edge_attr[:, 0].tolist() == [3] * 12
    src, dst = g.edge_index
    assert torch.equal(src[0::2], dst[1::2]) and torch.equal(
        dst[0::2], src[1::2]
    )  # edge e ^ 1 is its reverse


def test_unknown_bucket_for_rare_values():
    spec = default_spec()
    g = smiles_to_graph("[Lr+6]", spec)  # element 103 is beyond the vocabulary, charge +6 too
    assert g.x[0, 0] == spec.atom_features[0].unknown_index == 100
    assert g.x[0, 2] == spec.atom_features[2].unknown_index
    single = smiles_to_graph("[Na+]", spec)
    assert single.edge_index.shape == (2, 0) and single.edge_attr.shape == (0, 4)


def test_failures_are_values_not_exceptions():
    for bad in ["", None, "C1CC", "c1cccc1", "C(C)(C)(C)(C)C", float("nan"), 42]:
        out = smiles_to_graph(bad, default_spec())
        assert isinstance(out, ParseFailure) and out.reason
    assert "empty" in parse_smiles("  ").reason
    assert "valence" in parse_smiles("C(C)(C)(C)(C)C").reason.lower()


def test_spec_roundtrip_fingerprint_and_diff():
    spec = default_spec()
    again = FeaturizerSpec.from_dict(spec.to_dict())
    assert again == spec and again.fingerprint() == spec.fingerprint()
    other = FeaturizerSpec(
        spec.name, 2, spec.atom_features[:-1] + (FeatureVocab("in_ring", (True,)),), spec.bond_features
    )
    diff = spec.diff(other)
    assert "version: 1 != 2" in diff
    assert any(line.startswith("atom_features[in_ring].values") for line in diff)
    assert spec.fingerprint() != other.fingerprint()
    assert spec_dict_diff({"a": 1}, {"a": 1}) == []
