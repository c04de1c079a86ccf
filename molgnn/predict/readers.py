"""The input table of a prediction run, streamed in chunks of rows (every cell as text), with the error
mapping of ``molgnn.data.table`` (one reader of tables, one set of messages)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from molgnn.data.table import reading_errors, smi_frame, table_format
from molgnn.errors import InputFileError


def read_chunks(path: Path, smiles_col: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input table in frames of ``chunk_rows`` rows, every cell as text; the SMILES in column
    ``smiles_col`` (.smi/.txt: first field -> ``smiles``, rest of the line -> ``id``)."""
    kind = table_format(path)
    with reading_errors(path, kind, unreadable="cannot read (truncated or corrupt file?)"):
        if kind in ("csv", "tsv"):
            with pd.read_csv(
                path,
                sep="," if kind == "csv" else "\t",
                dtype=str,
                keep_default_na=False,
                chunksize=chunk_rows,
                encoding_errors="strict",
            ) as reader:
                for i, frame in enumerate(reader):
                    if i == 0 and not isinstance(
                        frame.index, pd.RangeIndex
                    ):  # surplus fields became an index
                        raise InputFileError(
                            f"{path}: line 2 has more fields than the header "
                            f"({len(frame.columns)} columns); quote values that contain the "
                            "separator"
                        )
                    if len(frame):  # a header-only file gives one empty frame
                        yield frame
        else:
            yield from _line_chunks(path, chunk_rows)


def _line_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline=None) as fh:
        while True:
            lines = [line for _, line in zip(range(chunk_rows), fh)]
            if not lines:
                return
            yield smi_frame(lines)


def input_columns(path: Path, smiles_col: str) -> list[str]:
    """Columns of the input table, checked before any output is written."""
    kind = table_format(path)
    if kind not in ("csv", "tsv"):
        return ["smiles", "id"]
    try:
        cols = list(pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{path}: file is empty (no header line)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError) as exc:  # EOFError: truncated .gz
        raise InputFileError(f"{path}: cannot read as {kind}: {exc}") from None
    if smiles_col not in cols:
        raise InputFileError(
            f"{path}: no column {smiles_col!r} (from input.smiles_col); columns are: {', '.join(cols[:20])}"
        )
    return cols


def count_rows(path: Path) -> int | None:
    """Data rows of an uncompressed file by counting newlines (for the progress bar only); None for .gz."""
    if path.suffix.lower() == ".gz":
        return None
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            n, last = n + block.count(b"\n"), block[-1:]
    n += last != b"\n"
    return n - (table_format(path) in ("csv", "tsv"))
