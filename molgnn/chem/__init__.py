"""RDKit parsing: SMILES -> sanitized Mol or ParseFailure; Bemis-Murcko scaffolds."""

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.chem.scaffold import murcko_scaffold

__all__ = ["ParseFailure", "parse_smiles", "murcko_scaffold"]
