"""Reading molecule tables (.csv/.tsv/.smi/.txt, optionally .gz) with clear errors and per-row reports."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from molgnn.errors import InputFileError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".smi", ".txt")


def table_format(path: Path) -> str:
    """The table kind of ``path`` from its suffix, ignoring a trailing ``.gz``: csv, tsv, smi or txt."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind not in TABLE_SUFFIXES:
        raise InputFileError(
            f"{path}: unsupported file type {kind or '(none)'!r}; use one of {TABLE_SUFFIXES}"
            " (optionally .gz)"
        )
    return kind[1:]


def check_readable(path: str | Path) -> Path:
    """Return ``path`` as a Path, or raise InputFileError naming it when it is missing or not a file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputFileError(f"{p}: file not found")
    if not p.is_file():
        raise InputFileError(f"{p}: not a regular file")
    return p


def read_frame(path: str | Path, **kwargs) -> pd.DataFrame:
    """Read a whole table as strings (no type guessing) with one clear error for unreadable files."""
    p = check_readable(path)
    kind = table_format(p)
    with reading_errors(p, kind):
        if kind in ("csv", "tsv"):
            sep = "," if kind == "csv" else "\t"
            frame = pd.read_csv(
                p, sep=sep, dtype=str, keep_default_na=False, encoding_errors="strict", **kwargs
            )
            if not isinstance(
                frame.index, pd.RangeIndex
            ):  # pandas turned surplus leading fields into an index
                raise InputFileError(
                    f"{p}: line 2 has more fields than the header ({len(frame.columns)} "
                    f"columns); quote values that contain {sep!r}"
                )
            return frame
        return smi_frame(_text_lines(p))


@contextmanager
def reading_errors(p: Path, kind: str, unreadable: str = "cannot read") -> Iterator[None]:
    """Turn what reading table ``p`` can raise into one-line InputFileErrors naming it: not UTF-8 (with the
    first bad line), empty, unparsable as ``kind``, unreadable (``unreadable``: the words before the cause)."""
    try:
        yield
    except UnicodeDecodeError:
        raise InputFileError(
            f"{p}: not UTF-8 text ({first_bad_utf8(p)}); re-save the file as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{p}: file is empty") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise InputFileError(f"{p}: cannot parse as {kind}: {str(exc).strip().splitlines()[-1]}") from None
    except (OSError, EOFError) as exc:  # EOFError / BadGzipFile: a truncated or corrupt .gz
        raise InputFileError(f"{p}: {unreadable}: {exc}") from None


def smi_frame(lines: Iterable[str]) -> pd.DataFrame:
    """.smi / .txt lines (SMILES, then an optional whitespace-separated id; no header) -> columns smiles, id."""
    rows = [line.split(maxsplit=1) for line in lines]
    return pd.DataFrame(
        {
            "smiles": [r[0] if r else "" for r in rows],
            "id": [r[1].strip() if len(r) > 1 else "" for r in rows],
        }
    )


def first_bad_utf8(p: Path) -> str:
    """Where the first byte that is not UTF-8 sits: ``line L, byte 0xNN`` (the decoder's own offset is
    relative to a buffer, not the file)."""
    import gzip

    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"line {line}, byte 0x{data[exc.start]:02x}"
    return "undecodable bytes"


def _text_lines(p: Path) -> list[str]:
    import gzip

    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "rt", encoding="utf-8", newline=None) as fh:
        return [line.rstrip("\r\n") for line in fh]


def require_columns(frame: pd.DataFrame, path: Path | str, columns: dict[str, str]) -> None:
    """Raise InputFileError naming the config key and file when a needed column is absent.

    ``columns`` maps config key (e.g. ``data.smiles_col``) -> column name.
    """
    for key, col in columns.items():
        if col not in frame.columns:
            have = ", ".join(map(str, frame.columns[:20]))
            raise InputFileError(f"{path}: no column {col!r} (from {key}); columns are: {have}")


@dataclass
class LabeledTable:
    """SMILES and float targets read from a table; targets are NaN where missing.

    ``smiles``: list[str] (length R); ``targets``: float32 [R, T]; ``problems``: row -> reason for rows
    whose targets cannot be used (non-numeric, non-finite, all missing).
    """

    path: Path
    smiles: list[str]
    target_names: list[str]
    targets: np.ndarray
    problems: dict[int, str] = field(default_factory=dict)


def read_labeled_table(path: str | Path, smiles_col: str, target_cols: list[str]) -> LabeledTable:
    """Read SMILES and numeric targets. Non-numeric or infinite cells become problems for that row; empty
    cells become NaN (masked in the loss); a row with no usable target at all is a problem."""
    p = check_readable(path)
    if not target_cols:
        raise InputFileError(f"{p}: data.target_cols is empty; name at least one target column")
    frame = read_frame(p)
    require_columns(
        frame,
        p,
        {"data.smiles_col": smiles_col, **{f"data.target_cols[{i}]": c for i, c in enumerate(target_cols)}},
    )
    if len(frame) == 0:
        raise InputFileError(f"{p}: no data rows (header only)")
    targets = np.full((len(frame), len(target_cols)), np.nan, dtype=np.float32)
    problems: dict[int, str] = {}
    for j, col in enumerate(target_cols):
        raw = frame[col].astype(str).str.strip()
        values = pd.to_numeric(raw, errors="coerce")
        bad_text = values.isna() & (raw != "") & ~raw.str.lower().isin(["nan", "na", "none", "null"])
        infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        for row in np.flatnonzero(bad_text.to_numpy()):
            problems.setdefault(int(row), f"target {col!r} is not a number: {raw.iloc[row]!r}")
        for row in np.flatnonzero(infinite):
            problems.setdefault(int(row), f"target {col!r} is not finite: {raw.iloc[row]!r}")
        ok = ~(bad_text.to_numpy() | infinite)
        targets[ok, j] = values.to_numpy(dtype=float, na_value=np.nan)[ok]
    for row in np.flatnonzero(np.isnan(targets).all(axis=1)):
        problems.setdefault(int(row), "no target value")
    smiles = frame[smiles_col].astype(str).tolist()
    _warn_duplicates(p, smiles)
    return LabeledTable(p, smiles, list(target_cols), targets, problems)


def _warn_duplicates(path: Path, smiles: list[str]) -> None:
    """Duplicated SMILES are kept as separate rows (each with its own target); say so once, since a
    random split can then put the same molecule in train and test."""
    stripped = pd.Series([s.strip() for s in smiles])
    dup = stripped[(stripped != "") & stripped.duplicated(keep="first")]
    if len(dup):
        log.warning(
            "%s: %d row(s) repeat an earlier SMILES string (kept; first: line %d %r)",
            path,
            len(dup),
            int(dup.index[0]) + 2,
            dup.iloc[0],
        )
