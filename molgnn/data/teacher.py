"""Teacher embeddings for distillation pretraining: a float matrix with one row per SMILES row of the corpus
file (``molgnn-embed input=<corpus> encoder=minimol output=teacher.npy`` writes exactly that), checked
against the corpus, sampled with it and standardized per column on the training rows.

The pretraining objective ``TeacherDistillation`` then regresses the standardized rows (``data.teacher``
float [1, T] per molecule) from the student encoder's graph embedding, so a small, fast encoder learns what a
large published one (MiniMol, CheMeleon, ...) computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from molgnn.errors import InputFileError
from molgnn.featurize.descriptors import DescriptorScaler


def load_teacher(path: str | Path, num_rows: int) -> np.ndarray:
    """float32 [num_rows, T] from a ``.npy`` file (never unpickled); refused, naming the file, when it is
    not a 2-D numeric matrix with one row per corpus SMILES row."""
    p = Path(path)
    try:
        values = np.load(p, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{p}: unreadable teacher embeddings (data.teacher): {exc}") from None
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise InputFileError(
            f"{p}: teacher embeddings must be a numeric [rows, dim] matrix (data.teacher); "
            f"got {values.dtype} {tuple(values.shape)}"
        )
    if len(values) != num_rows:
        raise InputFileError(
            f"{p}: {len(values)} teacher rows for {num_rows} corpus SMILES rows (data.teacher must be "
            "made from the same file, in its row order: molgnn-embed input=<corpus> ...)"
        )
    return np.asarray(values, dtype=np.float32)


def check_finite(values: np.ndarray, rows: np.ndarray, path: str | Path) -> None:
    """Refuse a teacher whose row for a usable corpus molecule (``rows``: corpus row numbers) is not
    finite: the teacher failed on a molecule the student would be asked to learn."""
    bad = rows[~np.isfinite(values[rows]).all(axis=1)]
    if len(bad):
        raise InputFileError(
            f"{path}: {len(bad)} teacher rows are NaN/inf for molecules molgnn can read "
            f"(first: corpus row {int(bad[0])}); re-embed the corpus with the teacher (data.teacher)"
        )


def fit_teacher_scaler(values: np.ndarray, clip: float) -> DescriptorScaler:
    """Per-column standardization fitted on the training rows ``values`` float [N, T] (constant columns
    dropped), the same scaler descriptors use."""
    return DescriptorScaler.fit(values, [f"teacher_{j}" for j in range(values.shape[1])], clip=clip)
