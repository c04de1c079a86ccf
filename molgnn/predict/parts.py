"""The parts store of a prediction run: ``<output>.parts/`` holds committed chunk files (each written to a
temp name and renamed, so a file there is complete) and ``meta.json``; resume keeps the committed chunks of
an interrupted run with the same meta, rank r of W owns chunks k with k % W == r and marks
``rank-r-of-W.done``, and ``merge_parts`` writes the output from every chunk in order."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from molgnn.errors import MolgnnError
from molgnn.storage import atomic_write

log = logging.getLogger("molgnn.predict")


def parts_dir(output: Path) -> Path:
    """Folder of committed chunk files next to the output: ``<output>.parts``."""
    return output.with_name(output.name + ".parts")


def _chunk_file(parts: Path, k: int, fmt: str) -> Path:
    return parts / f"chunk-{k:09d}.{fmt}"


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def parquet_schema(columns: list[str], pred_cols: list[str]) -> pa.Schema:
    kind = {
        **{c: pa.string() for c in columns},
        **{c: pa.float32() for c in pred_cols},
        "valid": pa.bool_(),
        **({"in_domain": pa.bool_()} if "in_domain" in pred_cols else {}),
    }
    return pa.schema([(c, kind[c]) for c in columns])


def write_chunk(parts: Path, k: int, frame: pd.DataFrame, fmt: str, schema: pa.Schema | None) -> None:
    """Commit chunk ``k``: its stats (``chunk-k.json``) then its rows, each to a temp name and renamed, so an
    existing chunk file is always complete. CSV parts have no header line."""
    stats = {"rows": len(frame), "valid": int(frame["valid"].sum())}
    _atomic_write_text(parts / f"chunk-{k:09d}.json", json.dumps(stats))

    def write(tmp: Path) -> None:
        if fmt == "csv":
            tmp.write_bytes(
                frame.to_csv(index=False, header=False, lineterminator="\n", float_format="%.7g").encode()
            )
        else:
            pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)

    atomic_write(_chunk_file(parts, k, fmt), write)


def start_parts(parts: Path, meta: dict, resume: bool, rank: int, world_size: int) -> set[int]:
    """Prepare the parts folder for this rank; returns the chunk indices already committed (resume) or an
    empty set after removing this rank's chunks of an earlier run (no resume)."""
    parts.mkdir(parents=True, exist_ok=True)
    meta_file = parts / "meta.json"
    if resume and meta_file.exists():
        old = json.loads(meta_file.read_text())
        changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        if changed:
            raise MolgnnError(
                f"{parts}: cannot resume: {', '.join(changed)} changed since the interrupted run "
                "(run without resume=true to start over)"
            )
    elif resume:
        log.info("resume=true but no interrupted run at %s: starting from the beginning", parts)
    mine = {}
    for f in parts.glob("chunk-*"):
        k = int(f.name.split(".")[0].split("-")[1])
        if k % world_size == rank:
            mine.setdefault(k, []).append(f)
    for f in parts.glob(f"rank-{rank}-of-*.done"):
        f.unlink()
    done = set()
    for k, files in mine.items():
        complete = (
            resume
            and _chunk_file(parts, k, meta["format"]) in files
            and parts / f"chunk-{k:09d}.json" in files
        )
        if complete:
            done.add(k)
        else:
            for f in files:
                f.unlink(missing_ok=True)
    if done:
        log.info("resuming: %d chunk(s) already committed in %s", len(done), parts)
    _atomic_write_text(meta_file, json.dumps(meta, indent=1))
    return done


def mark_done(parts: Path, rank: int, world_size: int, total_chunks: int) -> None:
    _atomic_write_text(parts / f"rank-{rank}-of-{world_size}.done", json.dumps({"chunks": total_chunks}))


def wait_for_ranks(parts: Path, world_size: int, timeout_s: float) -> None:
    """Rank 0: wait until every rank has marked its shard done (a barrier when torch.distributed is up)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        return
    deadline, logged = time.monotonic() + timeout_s, False
    while True:
        missing = [r for r in range(world_size) if not (parts / f"rank-{r}-of-{world_size}.done").exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise MolgnnError(
                f"{parts}: ranks {missing} did not finish within {timeout_s:.0f} s; rerun them with "
                "resume=true, then merge"
            )
        if not logged:
            log.info("rank 0: waiting for ranks %s to finish their shards", missing)
            logged = True
        time.sleep(0.2)


def merge_parts(output: str | Path, world_size: int = 1) -> dict:
    """Write ``output`` from its parts folder: header + every chunk in index order (CSV: a byte copy;
    Parquet: one row group per chunk), to a temp name renamed at the end; then remove the parts folder.
    Needs every rank's done marker and every chunk. Returns {"rows", "valid"} over the whole output."""
    output = Path(output)
    parts = parts_dir(output)
    meta = json.loads((parts / "meta.json").read_text())
    totals = set()
    for r in range(world_size):
        marker = parts / f"rank-{r}-of-{world_size}.done"
        if not marker.exists():
            raise MolgnnError(f"{parts}: rank {r} of {world_size} has not finished; cannot merge")
        totals.add(json.loads(marker.read_text())["chunks"])
    if len(totals) != 1:
        raise MolgnnError(f"{parts}: ranks disagree on the number of chunks {sorted(totals)}")
    n_chunks, fmt, columns = totals.pop(), meta["format"], meta["columns"]
    missing = [k for k in range(n_chunks) if not _chunk_file(parts, k, fmt).exists()]
    if missing:
        raise MolgnnError(f"{parts}: chunks {missing[:10]} are missing; rerun with resume=true")
    stats = {"rows": 0, "valid": 0}
    for k in range(n_chunks):
        chunk_stats = json.loads((parts / f"chunk-{k:09d}.json").read_text())
        stats = {key: stats[key] + chunk_stats[key] for key in stats}
    atomic_write(output, lambda tmp: _concat_chunks(parts, tmp, n_chunks, fmt, columns, meta))
    shutil.rmtree(parts, ignore_errors=True)
    return stats


def _concat_chunks(parts: Path, dest: Path, n_chunks: int, fmt: str, columns: list[str], meta: dict) -> None:
    """Header + chunks 0..n_chunks-1 into ``dest`` (CSV: a byte copy; Parquet: one row group per chunk)."""
    if fmt == "csv":
        with open(dest, "wb") as out:
            out.write(pd.DataFrame(columns=columns).to_csv(index=False, lineterminator="\n").encode())
            for k in range(n_chunks):
                with open(_chunk_file(parts, k, fmt), "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        return
    schema = parquet_schema(columns, meta["prediction_columns"])
    with pq.ParquetWriter(dest, schema) as writer:
        for k in range(n_chunks):
            writer.write_table(pq.read_table(_chunk_file(parts, k, fmt), schema=schema))
        if n_chunks == 0:
            writer.write_table(schema.empty_table())
