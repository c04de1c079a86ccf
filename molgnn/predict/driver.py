"""The prediction driver: ``predict_file`` checks checkpoints, input and settings before writing anything,
then streams chunks through featurization and inference into the parts store and merges the output."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from molgnn.data.table import check_readable, table_format
from molgnn.errors import MolgnnError
from molgnn.predict.featurize import featurized_chunks
from molgnn.predict.infer import frame_columns, output_frame, predict_jobs
from molgnn.predict.parts import (
    mark_done,
    merge_parts,
    parquet_schema,
    parts_dir,
    start_parts,
    wait_for_ranks,
    write_chunk,
)
from molgnn.predict.readers import count_rows, input_columns, read_chunks
from molgnn.predictor import load_ensemble
from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns

log = logging.getLogger("molgnn.predict")

FORMATS = ("csv", "parquet")


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

            self.bar = Progress(
                TextColumn("predict"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:,.0f} molecules/s"),
                TimeElapsedColumn(),
            )
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


def predict_file(
    ckpt_path: str | list[str],
    input_path: str | Path,
    output_path: str | Path,
    smiles_col: str = "smiles",
    output_format: str | None = None,
    chunk_rows: int = 10000,
    batch_size: int | None = None,
    num_workers: int | None = None,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    shard_timeout_s: float = 86400.0,
    torch_threads: int | None = None,
    uncertainty: bool = True,
    interval_level: float | None = None,
) -> PredictSummary:
    """Predict every row of ``input_path`` with one checkpoint/bundle or an ensemble (a list) and write
    ``output_path`` (CSV or Parquet). Checkpoint, input and settings errors are raised before any output
    is written. A run that stops keeps its committed chunks in ``<output>.parts``; ``resume=True`` does the rest.
    ``uncertainty``: write spreads, conformal intervals at ``interval_level`` (default: the level the model
    was calibrated for) and domain columns when every model carries a calibration (molgnn.uncertainty).

    Defaults: ``num_workers`` every core; ``batch_size`` 128 graphs on CPU (measured fastest: larger
    batches fall out of cache), 1024 on CUDA; ``torch_threads`` (CPU, during the run) half the cores when
    workers featurize beside the forward pass, else torch's own default. ``molgnn-predict`` passes the
    keys of its checked config (``PredictConfig``) through ``config.predict_arguments``.
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
    columns = frame_columns(carried, pred_cols)
    desc_names = sorted({n for m in models for n in m.descriptor_names})
    meta = {
        "input": _file_id(source),
        "checkpoints": [_file_id(p) for p in paths],
        "smiles_col": smiles_col,
        "chunk_rows": chunk_rows,
        "format": fmt,
        "columns": columns,
        "prediction_columns": pred_cols,
        "interval_level": interval_level,
    }
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
    rows = valid_rows = 0
    start, saved_threads = time.perf_counter(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for k, frame, jobs in featurized_chunks(
            my_chunks(), smiles_col, models[0].spec, desc_names, workers, fingerprints=uq.calibrated
        ):
            values, valid, errors = predict_jobs(
                models, jobs, batch_size, dev, desc_names, uq, interval_level
            )
            write_chunk(parts, k, output_frame(frame, pred_cols, values, valid, errors), fmt, schema)
            rows, valid_rows = rows + len(frame), valid_rows + int(valid.sum())
            bar.advance(len(frame))
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
    log.info(
        "predicted %d rows (%d valid, %d invalid) in %.1f s: %.0f molecules/s%s",
        summary.rows,
        summary.valid,
        summary.invalid,
        summary.seconds,
        summary.rate,
        f"; wrote {output} ({summary.output_rows} rows)" if rank == 0 else f"; rank {rank} of {world_size}",
    )
    return summary
