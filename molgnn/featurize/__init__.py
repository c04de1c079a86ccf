"""Featurization: FeaturizerSpec (versioned vocabularies with unknown buckets) and molecule -> graph."""

from molgnn.featurize.graph import GraphArrays, MolFeaturizer, mol_to_graph, smiles_to_arrays, smiles_to_graph
from molgnn.featurize.spec import FeatureVocab, FeaturizerSpec, default_spec

__all__ = [
    "FeatureVocab",
    "FeaturizerSpec",
    "GraphArrays",
    "MolFeaturizer",
    "default_spec",
    "mol_to_graph",
    "smiles_to_arrays",
    "smiles_to_graph",
]
