"""Prediction on a Dask cluster (``pip install molgnn[cluster]``): ``cluster.scheduler=tcp://host:8786`` (a
running ``dask scheduler`` with ``dask worker`` processes on any number of hosts) or
``cluster.local_workers=N`` (a ``LocalCluster`` of N one-thread processes started for the run).

Client (the ``molgnn-predict`` process)::

    each input file --read_chunks (the local run's very chunks)--> chunk k  (committed already? skipped)
      --> one task per chunk, carrying its rows (``predict_chunk``), at most TASKS_PER_THREAD per worker
          thread in flight, so memory stays flat however large the input
      <-- the chunk's output frame, as tasks finish (any order) --> <output>.parts/chunk-k (atomic commit)
    every chunk of a file committed --> merge_parts: the output, rows in input order, once each

Workers import molgnn from their own environment, load the checkpoints once per process (``_LOADED``) and
featurize + predict a chunk in that process. A worker killed mid-task loses nothing: its rows travel inside
the task, so the scheduler reruns it elsewhere (``distributed.scheduler.allowed-failures`` times, 3 by
default); a task that raises is retried ``cluster.retries`` times. Only the client writes, so a late
duplicate of a task can never write twice, and a rerun with ``resume=true`` skips every committed chunk
(same ``meta.json`` as a local run: either can resume the other). Workers need the checkpoint files at the
same paths (shared filesystem); they need neither the input nor the output.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import pandas as pd
import torch

from molgnn.errors import MolgnnError
from molgnn.predict.featurize import featurized_chunks
from molgnn.predict.infer import Forward, output_frame, predict_jobs
from molgnn.predict.parts import mark_done, merge_parts, start_parts, write_chunk
from molgnn.predict.plan import FilePlan
from molgnn.predict.readers import count_rows, read_chunks

log = logging.getLogger("molgnn.predict")

INSTALL = "cluster prediction needs Dask distributed: pip install molgnn[cluster]"
KEYS = ("scheduler", "local_workers", "retries")
TASKS_PER_THREAD = 2  # one chunk running and one queued per worker thread keeps every worker busy


def cluster_enabled(cluster: dict | None) -> bool:
    """Whether ``cluster`` (``cluster.*`` of the config) asks for a Dask run: a scheduler address or
    ``local_workers`` >= 1 (not both)."""
    if not cluster:
        return False
    unknown = sorted(set(cluster) - set(KEYS))
    if unknown:
        raise MolgnnError(f"cluster: unknown key(s) {unknown}; known: {list(KEYS)}")
    scheduler, local = cluster.get("scheduler"), int(cluster.get("local_workers") or 0)
    if scheduler and local:
        raise MolgnnError("set cluster.scheduler (an existing cluster) or cluster.local_workers, not both")
    return bool(scheduler) or local > 0


@dataclass(frozen=True)
class ChunkTask:
    """What a worker needs besides a chunk's rows (small; pickled into every task)."""

    ckpt_paths: tuple[str, ...]
    ckpt_key: str  # the checkpoints' identities (path, size, mtime): a worker reloads when they change
    smiles_col: str
    pred_cols: tuple[str, ...]
    device: str
    batch_size: int | None
    torch_threads: int | None
    uncertainty: bool
    interval_level: float | None


_LOADED: dict = {}  # in each worker process: (ckpt_key, device, uncertainty) -> (models, uq, desc, device)


def _models(task: ChunkTask) -> tuple:
    key = (task.ckpt_key, task.device, task.uncertainty)
    if key not in _LOADED:
        from molgnn.predict.driver import _resolve_device
        from molgnn.predictor import load_ensemble
        from molgnn.uncertainty.outputs import EnsembleUncertainty

        dev = _resolve_device(task.device)
        models = [m.to(dev) for m in load_ensemble(list(task.ckpt_paths))]
        uq = EnsembleUncertainty([m.calibration if task.uncertainty else None for m in models])
        desc_names = sorted({n for m in models for n in m.descriptor_names})
        _LOADED.clear()
        _LOADED[key] = (models, uq, desc_names, dev)
    return _LOADED[key]


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        worker = get_worker()
        return int(getattr(worker, "state", worker).nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def predict_chunk(task: ChunkTask, k: int, frame: pd.DataFrame) -> pd.DataFrame:
    """Worker side: chunk ``k``'s rows -> its output frame (featurized and predicted in this process; torch
    uses ``torch_threads``, default this worker's thread count)."""
    models, uq, desc_names, dev = _models(task)
    torch.set_num_threads(task.torch_threads or _worker_threads())
    batch_size = task.batch_size or (1024 if dev.type == "cuda" else 128)
    ((_, frame, jobs),) = featurized_chunks(
        iter([(k, frame)]), task.smiles_col, models[0].spec, desc_names, 0, fingerprints=uq.calibrated
    )
    forward = Forward(models, batch_size, dev, desc_names, uq, task.interval_level)
    values, valid, errors = predict_jobs(forward, jobs)
    return output_frame(frame, list(task.pred_cols), values, valid, errors)


def _connect(cluster: dict):
    """(client, local cluster or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MolgnnError(INSTALL) from None
    address = cluster.get("scheduler")
    if address:
        try:
            return Client(address, timeout="30s"), None
        except OSError as exc:
            raise MolgnnError(
                f"cannot reach the Dask scheduler at {address} (cluster.scheduler): {exc}"
            ) from None
    n = int(cluster["local_workers"])
    local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    log.info("started a local Dask cluster of %d worker(s); dashboard: %s", n, local.dashboard_link)
    return Client(local), local


def predict_on_cluster(
    cluster: dict,
    ckpt_paths: list,
    plans: list[FilePlan],
    pred_cols: list[str],
    interval_level: float | None,
    *,
    chunk_rows: int,
    batch_size: int | None,
    device: str,
    resume: bool,
    progress: bool,
    torch_threads: int | None,
    uncertainty: bool,
):
    """Predict every file of ``plans`` on a Dask cluster (module docstring); returns a ``PredictSummary``
    (``rows``/``chunks``: predicted by this run; ``output_rows``: every output together)."""
    from molgnn.predict.driver import PredictSummary, _Progress, combine, log_summary

    client, local = _connect(cluster)
    task = ChunkTask(
        tuple(str(p) for p in ckpt_paths),
        json.dumps(plans[0].meta["checkpoints"], sort_keys=True),
        "",
        tuple(pred_cols),
        device,
        batch_size,
        torch_threads,
        uncertainty,
        interval_level,
    )
    retries, run = int(cluster.get("retries", 2)), uuid.uuid4().hex[:8]
    summaries = [PredictSummary(0, 0, 0.0, plan.output) for plan in plans]
    bar = None
    start = time.perf_counter()
    try:
        for plan in plans:
            plan.output.parent.mkdir(parents=True, exist_ok=True)
            plan.done = start_parts(plan.parts, plan.meta, resume, 0, 1)
        totals = [count_rows(p.source) for p in plans] if progress else [None]
        bar = _Progress(progress, None if None in totals else sum(totals))
        _run_tasks(client, task, plans, summaries, chunk_rows, retries, run, bar)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if local is not None:
            local.close()
    for plan, summary in zip(plans, summaries):
        stats = merge_parts(plan.output, 1)
        summary.output_rows, summary.output_valid = stats["rows"], stats["valid"]
        summary.seconds = time.perf_counter() - start
        log_summary(summary)
    return summaries[0] if len(summaries) == 1 else combine(summaries, plans[0].output.parent)


def _run_tasks(client, task, plans, summaries, chunk_rows, retries, run, bar) -> None:
    """Submit every uncommitted chunk (a bounded window in flight), commit results as they come, and mark
    each file's parts done with its chunk count."""
    from dataclasses import replace

    from distributed import as_completed

    pending, in_flight, n_chunks = as_completed(), {}, []

    def commit(future) -> None:
        i, k = in_flight.pop(future)
        try:
            out = future.result()
        except MolgnnError:
            raise
        except Exception as exc:  # KilledWorker, a lost scheduler, ...
            raise MolgnnError(
                f"{plans[i].source}: chunk {k} failed on the cluster ({type(exc).__name__}: {exc}); committed "
                "chunks are kept, rerun with resume=true"
            ) from exc
        write_chunk(plans[i].parts, k, out, plans[i].fmt, plans[i].schema)
        s = summaries[i]
        s.rows, s.valid, s.chunks = s.rows + len(out), s.valid + int(out["valid"].sum()), s.chunks + 1
        bar.advance(len(out))

    try:
        for i, plan in enumerate(plans):
            file_task, count = replace(task, smiles_col=plan.smiles_col), 0
            for k, frame in enumerate(read_chunks(plan.source, plan.smiles_col, chunk_rows)):
                count = k + 1
                if k in plan.done:
                    continue
                key = f"molgnn-predict-{run}-{i}-chunk-{k}"
                future = client.submit(
                    predict_chunk, file_task, k, frame, key=key, retries=retries, pure=False
                )
                in_flight[future] = (i, k)
                pending.add(future)
                while len(in_flight) >= TASKS_PER_THREAD * max(1, sum(client.nthreads().values())):
                    commit(next(pending))  # workers that join or leave change the window
            n_chunks.append(count)
        for future in pending:
            commit(future)
    finally:
        if in_flight:
            client.cancel(list(in_flight))
    for plan, count in zip(plans, n_chunks):
        mark_done(plan.parts, 0, 1, count)
