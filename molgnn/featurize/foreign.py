"""Featurizer specs of published pretrained encoders, so their checkpoints see the inputs they were trained on.

Both Hu et al. 2020 (snap-stanford/pretrain-gnns, ``loader.py``) and MolCLR (yuyangw/MolCLR,
``dataset/dataset.py``) featurize a molecule without explicit hydrogens as

- atoms, long [N, 2]: atomic number - 1 (Z = 1..118 -> 0..117), chirality tag in
  [UNSPECIFIED, CW, CCW] (their list also has CHI_OTHER, but the embedding has 3 rows);
- bonds, long [E, 2] (each bond in both directions): bond type SINGLE/DOUBLE/TRIPLE/AROMATIC = 0..3,
  bond direction NONE/ENDUPRIGHT/ENDDOWNRIGHT = 0..2.

Their code raises on a value outside these lists; here an unseen value maps to a fixed row
(``FeatureVocab.unknown``): the mask token where the table has one, else the "nothing special" row 0.
"""

from __future__ import annotations

from molgnn.featurize.spec import ELEMENTS, FeatureVocab, FeaturizerSpec

CHIRALITY = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW")
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
BOND_DIRS = ("NONE", "ENDUPRIGHT", "ENDDOWNRIGHT")

HU2020_ATOM_MASK = 119  # x_embedding1 has 120 rows: 0..117 elements, 118 unused, 119 mask
HU2020_BOND_MASK = 5  # edge_embedding1 has 6 rows: 0..3 bond types, 4 self-loop, 5 mask
MOLCLR_ATOM_MASK = 118  # x_embedding1 has 119 rows: 0..117 elements, 118 mask


def hu2020_spec() -> FeaturizerSpec:
    """Hu et al. 2020 featurization (GCN / GraphSAGE / GAT checkpoints): unknown atoms and bonds -> mask rows."""
    return FeaturizerSpec(
        name="hu2020",
        version=1,
        atom_features=(
            FeatureVocab("atomic_num", ELEMENTS, unknown=HU2020_ATOM_MASK),
            FeatureVocab("chirality", CHIRALITY, unknown=0),
        ),
        bond_features=(
            FeatureVocab("bond_type", BOND_TYPES, unknown=HU2020_BOND_MASK),
            FeatureVocab("bond_dir", BOND_DIRS, unknown=0),
        ),
    )


def molclr_spec() -> FeaturizerSpec:
    """MolCLR featurization (GCN checkpoint): unknown atoms -> mask row; unknown bond types -> SINGLE (their
    bond table has no mask row)."""
    return FeaturizerSpec(
        name="molclr",
        version=1,
        atom_features=(
            FeatureVocab("atomic_num", ELEMENTS, unknown=MOLCLR_ATOM_MASK),
            FeatureVocab("chirality", CHIRALITY, unknown=0),
        ),
        bond_features=(
            FeatureVocab("bond_type", BOND_TYPES, unknown=0),
            FeatureVocab("bond_dir", BOND_DIRS, unknown=0),
        ),
    )
