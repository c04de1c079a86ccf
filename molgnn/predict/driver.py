"""The prediction driver: ``predict_file`` checks checkpoints, input and settings before writing anything,
then streams chunks through featurization and inference into the parts store and merges the output."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from molgnn.errors import MolgnnError
from molgnn.predict.featurize import featurized_chunks
from molgnn.predict.infer import Forward, output_frame, predict_jobs
from molgnn.predict.parts import mark_done, merge_parts, start_parts, wait_for_ranks, write_chunk
from molgnn.predict.plan import (
    FORMATS,
    FilePlan,
    file_id,
    input_files,
    output_paths,
    plan_file,
    resolve_format,
)
from molgnn.predict.readers import count_rows, read_chunks
from molgnn.predictor import load_ensemble
from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns

log = logging.getLogger("molgnn.predict")

__all__ = ["FORMATS", "PredictSummary", "predict_file", "resolve_format"]


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
    chunks: int = 0  # chunks predicted by this run (committed chunks of an interrupted run are skipped)

    @property
    def invalid(self) -> int:
        return self.rows - self.valid

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


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
    input_path: str | Path | list,
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
    cluster: dict | None = None,
) -> PredictSummary:
    """Predict every row of ``input_path`` with one checkpoint/bundle or an ensemble (a list) and write
    ``output_path`` (CSV or Parquet). Checkpoint, input and settings errors are raised before any output
    is written. A run that stops keeps its committed chunks in ``<output>.parts``; ``resume=True`` does the rest.
    ``uncertainty``: write spreads, conformal intervals at ``interval_level`` (default: the level the model
    was calibrated for) and domain columns when every model carries a calibration (molgnn.uncertainty).

    ``input_path`` may be a file set (a list and/or glob patterns): each file is predicted into its own
    output in the folder ``output_path`` (``plan.output_paths``). ``cluster``: ``{"scheduler": address}`` or
    ``{"local_workers": n}`` runs the chunks as Dask tasks (``molgnn.predict.cluster``); None / both unset:
    this machine (sharded by ``rank`` / ``world_size`` when launched by torchrun or SLURM).

    Defaults: ``num_workers`` every core; ``batch_size`` 128 graphs on CPU (measured fastest: larger
    batches fall out of cache), 1024 on CUDA. On CPU with workers, each worker featurizes and predicts its
    jobs with ``torch_threads`` (default 1) torch threads; without workers (or on a GPU) the forward pass runs
    in this process with ``torch_threads`` (default: torch's own). ``molgnn-predict`` passes the
    keys of its checked config (``PredictConfig``) through ``config.predict_arguments``.
    """
    from molgnn.predict.cluster import cluster_enabled, predict_on_cluster

    paths = [ckpt_path] if isinstance(ckpt_path, (str, Path)) else list(ckpt_path)
    models = load_ensemble(paths)
    sources, is_set = input_files(input_path)
    outputs = output_paths(sources, output_path, is_set, output_format)
    if not (0 <= rank < world_size):
        raise MolgnnError(f"rank {rank} is not in [0, world_size={world_size})")
    on_cluster = cluster_enabled(cluster)
    if on_cluster and world_size > 1:
        raise MolgnnError("cluster.* and RANK/WORLD_SIZE sharding exclude each other; use one of them")
    if chunk_rows < 1 or (batch_size is not None and batch_size < 1):
        raise MolgnnError(f"chunk_rows and batch_size must be >= 1 (got {chunk_rows}, {batch_size})")
    if interval_level is not None and not 0.0 < float(interval_level) < 1.0:
        raise MolgnnError(f"interval_level={interval_level}: must be in (0, 1), e.g. 0.9")
    uq = EnsembleUncertainty([m.calibration if uncertainty else None for m in models])
    pred_cols = output_columns(models[0].columns, len(models) > 1, uq.calibrated)
    ckpts = [file_id(p) for p in paths]
    plans = [
        plan_file(src, out, smiles_col, output_format, chunk_rows, pred_cols, ckpts, interval_level)
        for src, out in zip(sources, outputs)
    ]
    settings = dict(chunk_rows=chunk_rows, batch_size=batch_size, device=device, resume=resume)
    settings.update(progress=progress, torch_threads=torch_threads, uncertainty=uncertainty)
    if on_cluster:
        return predict_on_cluster(cluster, paths, plans, pred_cols, interval_level, **settings)
    dev = _resolve_device(device)
    models = [m.to(dev) for m in models]
    summaries = [
        _predict_local(
            models,
            plan,
            uq,
            pred_cols,
            interval_level,
            dev,
            rank,
            world_size,
            shard_timeout_s,
            num_workers,
            **settings,
        )
        for plan in plans
    ]
    return summaries[0] if len(summaries) == 1 else combine(summaries, Path(output_path))


def combine(summaries: list[PredictSummary], output: Path) -> PredictSummary:
    """One summary of a file set's runs (``output``: the folder)."""
    total = PredictSummary(0, 0, 0.0, output, chunks=0)
    for s in summaries:
        total.rows, total.valid, total.seconds = (
            total.rows + s.rows,
            total.valid + s.valid,
            total.seconds + s.seconds,
        )
        total.chunks += s.chunks
        if s.output_rows is not None:
            total.output_rows = (total.output_rows or 0) + s.output_rows
            total.output_valid = (total.output_valid or 0) + s.output_valid
    return total


def _predict_local(
    models,
    plan: FilePlan,
    uq,
    pred_cols,
    interval_level,
    dev,
    rank,
    world_size,
    shard_timeout_s,
    num_workers,
    *,
    chunk_rows,
    batch_size,
    device,
    resume,
    progress,
    torch_threads,
    uncertainty,
) -> PredictSummary:
    """One input file on this machine: this rank's chunks through a fork pool of featurization workers and
    the forward pass here, into the parts store; rank 0 merges."""
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    parts, fmt, smiles_col = plan.parts, plan.fmt, plan.smiles_col
    done = start_parts(parts, plan.meta, resume, rank, world_size)
    batch_size = batch_size or (1024 if dev.type == "cuda" else 128)
    desc_names = sorted({n for m in models for n in m.descriptor_names})
    cores = os.cpu_count() or 1
    workers = cores if num_workers is None else num_workers
    # on CPU with workers, each worker featurizes and predicts its own jobs (1 torch thread each: the cores
    # are shared by the workers, nothing idles while another stage waits); otherwise the forward pass is here
    forward = Forward(models, batch_size, dev, desc_names, uq, interval_level)
    threads = None if workers > 0 and forward.forkable else torch_threads

    seen = [0]

    def my_chunks():
        for k, frame in enumerate(read_chunks(plan.source, smiles_col, chunk_rows)):
            seen[0] = k + 1
            if k % world_size == rank and k not in done:
                yield k, frame

    total = count_rows(plan.source) if progress and world_size == 1 else None
    bar = _Progress(progress, total)
    rows = valid_rows = chunks = 0
    start, saved_threads = time.perf_counter(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for k, frame, jobs in featurized_chunks(
            my_chunks(), smiles_col, models[0].spec, desc_names, workers, fingerprints=uq.calibrated,
            forward=forward, forward_threads=torch_threads or 1,
        ):  # fmt: skip
            values, valid, errors = predict_jobs(forward, jobs)
            write_chunk(parts, k, output_frame(frame, pred_cols, values, valid, errors), fmt, plan.schema)
            rows, valid_rows, chunks = rows + len(frame), valid_rows + int(valid.sum()), chunks + 1
            bar.advance(len(frame))
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)
    mark_done(parts, rank, world_size, seen[0])
    summary = PredictSummary(rows, valid_rows, time.perf_counter() - start, plan.output, chunks=chunks)
    if rank == 0:
        if world_size > 1:
            wait_for_ranks(parts, world_size, shard_timeout_s)
        stats = merge_parts(plan.output, world_size)
        summary.output_rows, summary.output_valid = stats["rows"], stats["valid"]
    log_summary(summary, rank, world_size)
    return summary


def log_summary(summary: PredictSummary, rank: int = 0, world_size: int = 1) -> None:
    log.info(
        "predicted %d rows (%d valid, %d invalid) in %.1f s: %.0f molecules/s%s",
        summary.rows,
        summary.valid,
        summary.invalid,
        summary.seconds,
        summary.rate,
        f"; wrote {summary.output} ({summary.output_rows} rows)"
        if rank == 0
        else f"; rank {rank} of {world_size}",
    )
