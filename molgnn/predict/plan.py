"""What a prediction run will do, decided (and checked) before anything is written: the input file set and
the output each file goes to, and per file a ``FilePlan`` (columns, parts folder, the ``meta.json`` a resumed
run must match). Shared by the local driver and the Dask executor (``molgnn.predict.cluster``), so both
cut the same chunks and either can resume the other's interrupted run."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from molgnn.data.table import check_readable, table_format
from molgnn.errors import InputFileError, MolgnnError
from molgnn.predict.infer import frame_columns
from molgnn.predict.parts import parquet_schema, parts_dir
from molgnn.predict.readers import input_columns

FORMATS = ("csv", "parquet")
_GLOB = ("*", "?", "[")


def resolve_format(path: Path, requested: str | None) -> str:
    fmt = requested or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if fmt not in FORMATS:
        raise MolgnnError(f"output_format must be one of {FORMATS}, got {fmt!r}")
    return fmt


def file_id(path: str | Path) -> dict:
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def input_files(path: str | Path | list) -> tuple[list[Path], bool]:
    """(the input files, whether they are a file set). A list, or a glob pattern (``*``, ``?``, ``[``) that
    is not itself an existing file, is a file set (sorted matches, in list order); a plain path is one file."""
    entries = [path] if isinstance(path, (str, Path)) else list(path)
    files: list[Path] = []
    for entry in entries:
        text = str(Path(entry).expanduser())
        if any(c in text for c in _GLOB) and not Path(text).exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputFileError(f"{text}: no file matches this pattern (input.path)")
            files += [Path(m) for m in matches]
        else:
            files.append(Path(text))
    is_set = (
        len(entries) != 1 or not isinstance(path, (str, Path)) or files[0] != Path(entries[0]).expanduser()
    )
    seen = {}
    for f in files:
        key = f.resolve()
        if key in seen:
            raise InputFileError(f"{f}: listed twice in input.path (also as {seen[key]})")
        seen[key] = f
    return [check_readable(f) for f in files], is_set


def output_paths(inputs: list[Path], output_path: str | Path, is_set: bool, fmt: str | None) -> list[Path]:
    """One output per input. A file set writes into the folder ``output_path``: ``<dir>/a.csv.gz`` ->
    ``<output_path>/a.<format>`` (format: ``output_format``, default csv); two inputs of one name are an error."""
    if not is_set:
        return [Path(output_path)]
    folder, outs = Path(output_path), {}
    if folder.is_file():
        raise MolgnnError(f"{folder}: output_path must be a folder when input.path is a file set")
    for f in inputs:
        name = f.name[: -len(".gz")] if f.name.lower().endswith(".gz") else f.name
        out = folder / f"{Path(name).stem}.{fmt or 'csv'}"
        if out in outs:
            raise MolgnnError(f"{outs[out]} and {f} would both be written to {out}; rename one of them")
        outs[out] = f
    return list(outs)


@dataclass
class FilePlan:
    """One input file of a run: its rows go, chunk by chunk, through ``parts`` into ``output``."""

    source: Path
    output: Path
    fmt: str
    smiles_col: str
    columns: list[str]
    meta: dict
    schema: pa.Schema | None
    done: set[int] = field(default_factory=set)  # chunks already committed (filled by start_parts)

    @property
    def parts(self) -> Path:
        return parts_dir(self.output)


def plan_file(
    source: Path,
    output: Path,
    smiles_col: str,
    output_format: str | None,
    chunk_rows: int,
    pred_cols: list[str],
    checkpoints: list[dict],
    interval_level: float | None,
) -> FilePlan:
    """Check one input file (readable, has the SMILES column) and describe its run."""
    carried = input_columns(source, smiles_col)
    if table_format(source) in ("smi", "txt"):
        smiles_col = "smiles"
    fmt = resolve_format(output, output_format)
    columns = frame_columns(carried, pred_cols)
    meta = {
        "input": file_id(source),
        "checkpoints": checkpoints,
        "smiles_col": smiles_col,
        "chunk_rows": chunk_rows,
        "format": fmt,
        "columns": columns,
        "prediction_columns": pred_cols,
        "interval_level": interval_level,
    }
    schema = parquet_schema(columns, pred_cols) if fmt == "parquet" else None
    return FilePlan(source, output, fmt, smiles_col, columns, meta, schema)
