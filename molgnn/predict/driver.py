"""Streaming batch prediction over SMILES files: one output row per input row, in input order.

Pipeline (memory stays flat as the file grows)::

    input file --(pandas chunked reader / line reader)--> chunk k (chunk_rows rows, carried columns)
      --> jobs of JOB_ROWS SMILES --(fork Pool, apply_async, bounded window)--> packed numpy graphs
      --> PyG batches collated straight from the packed arrays --> model(s) forward (main process,
          overlapped with the workers featurizing the next jobs)
      --> chunk frame: carried columns, one column per target (ensemble: <t>_mean, <t>_std), valid, error
      --> <output>.parts/chunk-<k>.{csv,parquet}  (written to a temp name, renamed: a file there is complete)
    end: header + parts concatenated in chunk order -> <output>.tmp-<pid> -> renamed to <output>

``resume=true`` keeps the committed chunk files of an interrupted run (same input, checkpoints and
settings, checked against ``<output>.parts/meta.json``) and predicts only the missing chunks, so no row is
lost or duplicated. Sharding: rank r of W predicts chunks k with k % W == r into the same parts folder and
marks ``rank-r-of-W.done``; rank 0 waits for every rank and merges (``merge_parts``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch_geometric.data import Batch

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.data.table import check_readable, first_bad_utf8, table_format
from molgnn.errors import InputFileError, MolgnnError
from molgnn.featurize.descriptors import mol_descriptors
from molgnn.featurize.graph import _featurizer_for
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.predictor import Predictor, load_ensemble
from molgnn.uncertainty.domain import FP_BITS, morgan_bits
from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns

log = logging.getLogger("molgnn.predict")

JOB_ROWS = 1000        # SMILES per worker job (unit of parallelism); chunk_rows is the unit of commit/resume
FORMATS = ("csv", "parquet")


# ------------------------------------------------------------------------------------------ input


def read_chunks(path: Path, smiles_col: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input table in frames of ``chunk_rows`` rows, every cell as text; the SMILES in column
    ``smiles_col`` (.smi/.txt: first field -> ``smiles``, rest of the line -> ``id``)."""
    kind = table_format(path)
    try:
        if kind in ("csv", "tsv"):
            with pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                             chunksize=chunk_rows, encoding_errors="strict") as reader:
                for i, frame in enumerate(reader):
                    if i == 0 and not isinstance(frame.index, pd.RangeIndex):  # surplus fields became an index
                        raise InputFileError(f"{path}: line 2 has more fields than the header "
                                             f"({len(frame.columns)} columns); quote values that contain the "
                                             "separator")
                    if len(frame):  # a header-only file gives one empty frame
                        yield frame
        else:
            yield from _line_chunks(path, chunk_rows)
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not UTF-8 text ({first_bad_utf8(path)}); re-save the file as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise InputFileError(f"{path}: cannot parse as {kind}: {str(exc).strip().splitlines()[-1]}") from None
    except (EOFError, OSError) as exc:  # EOFError / BadGzipFile: a truncated or corrupt .gz
        raise InputFileError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from None


def _line_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline=None) as fh:
        while True:
            lines = [line for _, line in zip(range(chunk_rows), fh)]
            if not lines:
                return
            parts = [line.rstrip("\r\n").split(maxsplit=1) for line in lines]
            yield pd.DataFrame({"smiles": [p[0] if p else "" for p in parts],
                                "id": [p[1].strip() if len(p) > 1 else "" for p in parts]})


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
        raise InputFileError(f"{path}: no column {smiles_col!r} (from input.smiles_col); columns are: "
                             f"{', '.join(cols[:20])}")
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


# ------------------------------------------------------------------------------------ featurization


def featurize_job(smiles: list, spec: FeaturizerSpec, desc_names: list[str], fingerprints: bool = False) -> dict:
    """Worker job: SMILES -> packed numpy graphs (numpy only: safe in forked workers).

    Returns x [sumN, Fa], edge_index [2, sumE] (numbering across the job's graphs), edge_attr [sumE, Fb],
    node_ptr / edge_ptr long [G + 1], valid bool [R], errors list[str] (R, "" if valid), desc float32
    [G, D] raw RDKit descriptors (D = len(desc_names), may be 0). Features travel as uint8 and edge_index as
    int32 (8x / 2x less to pickle and hold than int64); ``iter_batches`` widens them to long.
    ``fingerprints``: also fp uint8 [G, 256], packed Morgan bits (applicability domain).
    """
    featurize = _featurizer_for(spec)
    graphs, errors, desc, fps = [], [], [], []
    for s in smiles:
        mol = parse_smiles(s)
        if not isinstance(mol, ParseFailure):
            try:
                graphs.append(featurize(mol))
                if desc_names:
                    desc.append(mol_descriptors(mol, desc_names))
                if fingerprints:
                    fps.append(morgan_bits(mol))
                errors.append("")
                continue
            except Exception as exc:  # a featurizer bug must not kill a million-row job
                mol = ParseFailure(f"featurization failed: {exc}")
        errors.append(mol.reason)
    counts = np.array([g.x.shape[0] for g in graphs], dtype=np.int64)
    node_ptr = np.concatenate([[0], np.cumsum(counts)])
    fa, fb = len(spec.atom_features), len(spec.bond_features)
    raw_desc = np.asarray(desc, dtype=np.float64).reshape(len(desc), len(desc_names))
    raw_desc[~np.isfinite(raw_desc) | (np.abs(raw_desc) > 1e30)] = np.nan
    small = max(spec.atom_vocab_sizes + spec.bond_vocab_sizes) <= 256
    feat = np.uint8 if small else np.int64
    return {
        "x": np.concatenate([g.x for g in graphs]).astype(feat) if graphs else np.zeros((0, fa), feat),
        "edge_index": (np.concatenate([g.edge_index + off for g, off in zip(graphs, node_ptr)], axis=1)
                       .astype(np.int32) if graphs else np.zeros((2, 0), np.int32)),
        "edge_attr": np.concatenate([g.edge_attr for g in graphs]).astype(feat) if graphs else np.zeros((0, fb), feat),
        "node_ptr": node_ptr,
        "edge_ptr": np.concatenate([[0], np.cumsum([g.edge_index.shape[1] for g in graphs], dtype=np.int64)]),
        "valid": np.array([e == "" for e in errors], dtype=bool),
        "errors": errors,
        "desc": raw_desc.astype(np.float32),
        **({"fp": np.stack(fps) if fps else np.zeros((0, FP_BITS // 8), np.uint8)} if fingerprints else {}),
    }


def _featurize_star(args: tuple) -> dict:
    return featurize_job(*args)


def iter_batches(packed: dict, batch_size: int) -> Iterator[Batch]:
    """Collate PyG batches of up to ``batch_size`` graphs directly from a job's packed arrays (no per-molecule
    ``Data`` objects): x long [N, Fa], edge_index long [2, E], edge_attr long [E, Fb], batch long [N],
    ptr long [B + 1] (+ desc float [B, D])."""
    x, ei, ea = (torch.from_numpy(packed[k]).long() for k in ("x", "edge_index", "edge_attr"))
    node_ptr, edge_ptr = torch.from_numpy(packed["node_ptr"]), torch.from_numpy(packed["edge_ptr"])
    desc = torch.from_numpy(packed["desc"])
    fp = torch.from_numpy(packed["fp"]) if "fp" in packed else None
    for a in range(0, node_ptr.numel() - 1, batch_size):
        b = min(a + batch_size, node_ptr.numel() - 1)
        n0, n1, e0, e1 = int(node_ptr[a]), int(node_ptr[b]), int(edge_ptr[a]), int(edge_ptr[b])
        ptr = node_ptr[a : b + 1] - n0
        batch = torch.repeat_interleave(torch.arange(b - a), ptr.diff())
        extra = {"fp": fp[a:b]} if fp is not None else {}
        yield Batch(x=x[n0:n1], edge_index=ei[:, e0:e1] - n0, edge_attr=ea[e0:e1], batch=batch, ptr=ptr,
                    desc=desc[a:b], **extra)


class _Now:
    """A job run in this process when its result is asked for (the no-worker path of ``featurized_chunks``)."""

    def __init__(self, job: tuple):
        self.job = job

    def get(self) -> dict:
        return featurize_job(*self.job)


def featurized_chunks(chunks: Iterator[tuple[int, pd.DataFrame]], smiles_col: str, spec: FeaturizerSpec,
                      desc_names: list[str], workers: int, window: int = 2, fingerprints: bool = False,
                      ) -> Iterator[tuple[int, pd.DataFrame, list]]:
    """(k, frame) -> (k, frame, jobs), each job's ``.get()`` giving its packed arrays (``featurize_job``).

    With workers >= 1 the jobs run in a fork Pool while the caller predicts earlier ones: the jobs of the
    next ``window`` chunks are queued before chunk k is handed out, and no more (``Pool.imap`` would read
    the whole file ahead), so memory stays bounded by ``window`` chunks.
    """
    def jobs(frame):
        smiles = frame[smiles_col].tolist()
        return [(smiles[i : i + JOB_ROWS], spec, desc_names, fingerprints) for i in range(0, len(smiles), JOB_ROWS)]

    if workers <= 0:
        for k, frame in chunks:
            yield k, frame, [_Now(job) for job in jobs(frame)]
        return
    with mp.get_context("fork").Pool(workers) as pool:
        pending: deque = deque()
        for k, frame in chunks:
            pending.append((k, frame, [pool.apply_async(_featurize_star, (job,)) for job in jobs(frame)]))
            if len(pending) > window:
                yield pending.popleft()
        while pending:
            yield pending.popleft()


# --------------------------------------------------------------------------------------- prediction


def predict_jobs(models: list[Predictor], jobs: list, batch_size: int, device: torch.device,
                 desc_names: list[str] = (), uq: EnsembleUncertainty | None = None, level: float | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Predict a chunk's featurization jobs (``.get()`` -> packed arrays, taken in order, so job j is
    predicted while the workers featurize later ones) -> values float32 [R, C'] (NaN rows where invalid;
    columns as ``output_columns``), valid bool [R], errors list[str] (R).
    ``desc_names``: the columns of the jobs' raw descriptors (each model takes its ``descriptor_names``)."""
    desc_index = [torch.tensor([list(desc_names).index(n) for n in m.descriptor_names], dtype=torch.long)
                  for m in models]
    uq = uq or EnsembleUncertainty([None] * len(models))
    values, valid, errors = [], [], []
    for job in jobs:
        packed = job.get()
        outs: list[dict[str, list]] = [{} for _ in models]
        for batch in iter_batches(packed, batch_size):
            batch = batch.to(device, non_blocking=True)
            desc = batch.desc
            for m, model in enumerate(models):
                batch.desc = desc[:, desc_index[m].to(desc.device)]
                for key, value in model.predict_full(batch, similarity=uq.calibrated).items():
                    outs[m].setdefault(key, []).append(value.float().cpu().numpy())
        if outs[0]:
            out = uq.values([{k: np.concatenate(v) for k, v in o.items()} for o in outs], level)
        else:
            out = np.zeros((0, len(output_columns(models[0].columns, len(models) > 1, uq.calibrated))))
        full = np.full((len(packed["valid"]), out.shape[1]), np.nan, dtype=np.float32)
        full[packed["valid"]] = out
        values.append(full)
        valid.append(packed["valid"])
        errors += packed["errors"]
    return np.concatenate(values), np.concatenate(valid), errors


def output_frame(frame: pd.DataFrame, pred_cols: list[str], values: np.ndarray, valid: np.ndarray,
                 errors: list[str]) -> pd.DataFrame:
    """Carried input columns (renamed ``<name>_input`` when they clash with an output column), then one
    column per prediction, ``valid`` and ``error``."""
    out = frame.rename(columns={c: f"{c}_input" for c in frame.columns if c in (*pred_cols, "valid", "error")})
    out = out.reset_index(drop=True)
    for j, col in enumerate(pred_cols):
        out[col] = values[:, j]
    if "in_domain" in out.columns:  # 1/0/NaN -> True/False/missing
        out["in_domain"] = pd.array(np.where(np.isnan(values[:, pred_cols.index("in_domain")]), None,
                                             values[:, pred_cols.index("in_domain")] == 1), dtype="boolean")
    out["valid"] = valid
    out["error"] = errors
    return out


# ------------------------------------------------------------------------------ parts, resume, merge


def parts_dir(output: Path) -> Path:
    """Folder of committed chunk files next to the output: ``<output>.parts``."""
    return output.with_name(output.name + ".parts")


def _chunk_file(parts: Path, k: int, fmt: str) -> Path:
    return parts / f"chunk-{k:09d}.{fmt}"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def parquet_schema(columns: list[str], pred_cols: list[str]) -> pa.Schema:
    kind = {**{c: pa.string() for c in columns}, **{c: pa.float32() for c in pred_cols}, "valid": pa.bool_(),
            **({"in_domain": pa.bool_()} if "in_domain" in pred_cols else {})}
    return pa.schema([(c, kind[c]) for c in columns])


def write_chunk(parts: Path, k: int, frame: pd.DataFrame, fmt: str, schema: pa.Schema | None) -> None:
    """Commit chunk ``k``: its stats (``chunk-k.json``) then its rows, each to a temp name and renamed, so an
    existing chunk file is always complete. CSV parts have no header line."""
    stats = {"rows": len(frame), "valid": int(frame["valid"].sum())}
    _atomic_write_text(parts / f"chunk-{k:09d}.json", json.dumps(stats))
    path = _chunk_file(parts, k, fmt)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    if fmt == "csv":
        tmp.write_bytes(frame.to_csv(index=False, header=False, lineterminator="\n", float_format="%.7g").encode())
    else:
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
    os.replace(tmp, path)


def start_parts(parts: Path, meta: dict, resume: bool, rank: int, world_size: int) -> set[int]:
    """Prepare the parts folder for this rank; returns the chunk indices already committed (resume) or an
    empty set after removing this rank's chunks of an earlier run (no resume)."""
    parts.mkdir(parents=True, exist_ok=True)
    meta_file = parts / "meta.json"
    if resume and meta_file.exists():
        old = json.loads(meta_file.read_text())
        changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        if changed:
            raise MolgnnError(f"{parts}: cannot resume: {', '.join(changed)} changed since the interrupted run "
                              "(run without resume=true to start over)")
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
        complete = resume and _chunk_file(parts, k, meta["format"]) in files and parts / f"chunk-{k:09d}.json" in files
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
            raise MolgnnError(f"{parts}: ranks {missing} did not finish within {timeout_s:.0f} s; rerun them with "
                              "resume=true, then merge")
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
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    stats = {"rows": 0, "valid": 0}
    if fmt == "csv":
        with open(tmp, "wb") as out:
            out.write(pd.DataFrame(columns=columns).to_csv(index=False, lineterminator="\n").encode())
            for k in range(n_chunks):
                with open(_chunk_file(parts, k, fmt), "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
    else:
        schema = parquet_schema(columns, meta["prediction_columns"])
        with pq.ParquetWriter(tmp, schema) as writer:
            for k in range(n_chunks):
                writer.write_table(pq.read_table(_chunk_file(parts, k, fmt), schema=schema))
            if n_chunks == 0:
                writer.write_table(schema.empty_table())
    for k in range(n_chunks):
        chunk_stats = json.loads((parts / f"chunk-{k:09d}.json").read_text())
        stats = {key: stats[key] + chunk_stats[key] for key in stats}
    os.replace(tmp, output)
    shutil.rmtree(parts, ignore_errors=True)
    return stats


# ---------------------------------------------------------------------------------------- the job


@dataclass
class PredictSummary:
    """What a run did: rows predicted by this process (``rows``/``valid``/``seconds``) and, once merged, the
    whole output (``output_rows``/``output_valid``; None on ranks other than 0)."""

    rows: int
    valid: int
    seconds: float
    output: Path
    output_rows: int | None = None
    output_valid: int | None = None

    @property
    def invalid(self) -> int:
        return self.rows - self.valid

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def resolve_format(path: Path, requested: str | None) -> str:
    fmt = requested or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if fmt not in FORMATS:
        raise MolgnnError(f"output_format must be one of {FORMATS}, got {fmt!r}")
    return fmt


def _file_id(path: str | Path) -> dict:
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _resolve_device(device: str) -> torch.device:
    """``auto``: this rank's GPU (``LOCAL_RANK``, set by torchrun) when CUDA is available, else the CPU."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device(device)


class _Progress:
    """A rich progress bar with molecules/s (no-op when disabled)."""

    def __init__(self, enabled: bool, total: int | None):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:,.0f} molecules/s"), TimeElapsedColumn())
            self.task = self.bar.add_task("predict", total=total, rate=0.0)
            self.bar.start()
        self.start, self.done = time.perf_counter(), 0

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(self.task, advance=rows, rate=rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def predict_file(ckpt_path: str | list[str], input_path: str | Path, output_path: str | Path,
                 smiles_col: str = "smiles", output_format: str | None = None, chunk_rows: int = 10000,
                 batch_size: int | None = None, num_workers: int | None = None, device: str = "cpu",
                 resume: bool = False, progress: bool = True, rank: int = 0, world_size: int = 1,
                 shard_timeout_s: float = 86400.0, torch_threads: int | None = None,
                 stop_after_chunks: int | None = None, uncertainty: bool = True,
                 interval_level: float | None = None) -> PredictSummary:
    """Predict every row of ``input_path`` with one checkpoint/bundle or an ensemble (a list) and write
    ``output_path`` (CSV or Parquet). Checkpoint, input and settings errors are raised before any output
    is written. ``stop_after_chunks`` (tests): raise after committing that many chunks, like a killed run.
    ``uncertainty``: write spreads, conformal intervals at ``interval_level`` (default: the level the model
    was calibrated for) and domain columns when every model carries a calibration (molgnn.uncertainty).

    Defaults: ``num_workers`` every core; ``batch_size`` 128 graphs on CPU (measured fastest: larger
    batches fall out of cache), 1024 on CUDA; ``torch_threads`` (CPU, during the run) half the cores when
    workers featurize beside the forward pass, else torch's own default.
    """
    paths = [ckpt_path] if isinstance(ckpt_path, (str, Path)) else list(ckpt_path)
    models = load_ensemble(paths)
    source = check_readable(input_path)
    carried = input_columns(source, smiles_col)
    if table_format(source) in ("smi", "txt"):
        smiles_col = "smiles"
    output = Path(output_path)
    fmt = resolve_format(output, output_format)
    if not (0 <= rank < world_size):
        raise MolgnnError(f"rank {rank} is not in [0, world_size={world_size})")
    dev = _resolve_device(device)
    batch_size = batch_size or (1024 if dev.type == "cuda" else 128)
    if chunk_rows < 1 or batch_size < 1:
        raise MolgnnError(f"chunk_rows and batch_size must be >= 1 (got {chunk_rows}, {batch_size})")
    models = [m.to(dev) for m in models]
    if interval_level is not None and not 0.0 < float(interval_level) < 1.0:
        raise MolgnnError(f"interval_level={interval_level}: must be in (0, 1), e.g. 0.9")
    uq = EnsembleUncertainty([m.calibration if uncertainty else None for m in models])
    pred_cols = output_columns(models[0].columns, len(models) > 1, uq.calibrated)
    columns = [f"{c}_input" if c in (*pred_cols, "valid", "error") else c for c in carried] + \
        pred_cols + ["valid", "error"]
    desc_names = sorted({n for m in models for n in m.descriptor_names})
    meta = {"input": _file_id(source), "checkpoints": [_file_id(p) for p in paths], "smiles_col": smiles_col,
            "chunk_rows": chunk_rows, "format": fmt, "columns": columns, "prediction_columns": pred_cols,
            "interval_level": interval_level}
    output.parent.mkdir(parents=True, exist_ok=True)
    parts = parts_dir(output)
    done = start_parts(parts, meta, resume, rank, world_size)
    cores = os.cpu_count() or 1
    workers = cores if num_workers is None else num_workers
    threads = torch_threads or (max(1, cores // 2) if workers > 0 and dev.type == "cpu" else None)
    schema = parquet_schema(columns, pred_cols) if fmt == "parquet" else None

    seen = [0]

    def my_chunks():
        for k, frame in enumerate(read_chunks(source, smiles_col, chunk_rows)):
            seen[0] = k + 1
            if k % world_size == rank and k not in done:
                yield k, frame

    total = count_rows(source) if progress else None
    if total is not None and world_size > 1:
        total = None
    bar = _Progress(progress, total)
    rows = valid_rows = committed = 0
    start, saved_threads = time.perf_counter(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for k, frame, jobs in featurized_chunks(my_chunks(), smiles_col, models[0].spec, desc_names, workers,
                                                fingerprints=uq.calibrated):
            values, valid, errors = predict_jobs(models, jobs, batch_size, dev, desc_names, uq, interval_level)
            write_chunk(parts, k, output_frame(frame, pred_cols, values, valid, errors), fmt, schema)
            rows, valid_rows, committed = rows + len(frame), valid_rows + int(valid.sum()), committed + 1
            bar.advance(len(frame))
            if stop_after_chunks is not None and committed >= stop_after_chunks:
                raise RuntimeError(f"stopped after {committed} chunk(s) (stop_after_chunks)")
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)
    mark_done(parts, rank, world_size, seen[0])
    summary = PredictSummary(rows, valid_rows, time.perf_counter() - start, output)
    if rank == 0:
        if world_size > 1:
            wait_for_ranks(parts, world_size, shard_timeout_s)
        stats = merge_parts(output, world_size)
        summary.output_rows, summary.output_valid = stats["rows"], stats["valid"]
    log.info("predicted %d rows (%d valid, %d invalid) in %.1f s: %.0f molecules/s%s", summary.rows,
             summary.valid, summary.invalid, summary.seconds, summary.rate,
             f"; wrote {output} ({summary.output_rows} rows)" if rank == 0 else f"; rank {rank} of {world_size}")
    return summary
