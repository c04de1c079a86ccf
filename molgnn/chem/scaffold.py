"""Bemis-Murcko scaffolds (with chirality, the MoleculeNet convention)."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold


def murcko_scaffold(mol: Chem.Mol) -> str:
    """Canonical Bemis-Murcko scaffold SMILES of ``mol`` (empty string for acyclic molecules)."""
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    except Exception:
        return ""
