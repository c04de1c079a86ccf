"""Packed Morgan fingerprints (radius 2, ``FP_BITS`` bits): the chemist's similarity for the applicability
domain (``molgnn.uncertainty.domain``). A featurize-layer function of one RDKit Mol, so the featurization
engine (``molgnn.data.engine``) computes it from the same parse as the graphs."""

from __future__ import annotations

import numpy as np
from rdkit.Chem import rdFingerprintGenerator

FP_BITS = 2048
FP_BYTES = FP_BITS // 8
_MORGAN = None


def morgan_bits(mol) -> np.ndarray:
    """RDKit Mol -> Morgan radius-2 fingerprint packed into uint8 [FP_BITS / 8] (numpy's packbits order)."""
    global _MORGAN
    if _MORGAN is None:
        _MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FP_BITS)
    return np.packbits(
        _MORGAN.GetFingerprintAsNumPy(mol)
    )  # uint8 {0, 1} [FP_BITS]: 1.5x faster than a BitVect


def stack_bits(arrays: list) -> np.ndarray:
    """Per-row packed bits (list [R] of uint8 [FP_BYTES], None where unparsable) -> uint8 [R, FP_BYTES]
    (zero rows where None)."""
    blank = np.zeros(FP_BYTES, np.uint8)
    return (
        np.stack([blank if a is None else a for a in arrays]) if arrays else np.zeros((0, FP_BYTES), np.uint8)
    )
