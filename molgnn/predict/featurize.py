"""Featurization jobs of a prediction run: SMILES -> packed numpy graphs in (forked) workers, a bounded
window of chunks ahead of the forward pass, and PyG batches collated straight from the packed arrays."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch

from molgnn.data.engine import Products
from molgnn.data.engine import featurize_job as engine_job
from molgnn.featurize.fingerprints import FP_BYTES, morgan_bits
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.parallel import imap_ordered

JOB_ROWS = 1000  # SMILES per worker job (unit of parallelism); chunk_rows is the unit of commit/resume


def featurize_job(
    smiles: list, spec: FeaturizerSpec, desc_names: list[str], fingerprints: bool = False
) -> dict:
    """Worker job: SMILES -> packed numpy graphs (``engine.featurize_job``: one parse per SMILES; numpy only).

    Returns x [sumN, Fa], edge_index [2, sumE] (numbering across the job's graphs), edge_attr [sumE, Fb],
    node_ptr / edge_ptr long [G + 1], valid bool [R], errors list[str] (R, "" if valid), desc float32
    [G, D] raw RDKit descriptors (D = len(desc_names), may be 0). Features travel as uint8 and edge_index as
    int32 (8x / 2x less to pickle and hold than int64); ``iter_batches`` widens them to long.
    ``fingerprints``: also fp uint8 [G, 256], packed Morgan bits (applicability domain).
    """
    products = Products(
        spec, descriptors=tuple(desc_names), mol_arrays=(("fp", morgan_bits),) if fingerprints else ()
    )
    out = engine_job(smiles, products)
    g = out["graphs"]
    valid = g["graph_index"] >= 0
    node_ptr, edge_ptr = g["node_ptr"], g["edge_ptr"]
    small = max(spec.atom_vocab_sizes + spec.bond_vocab_sizes) <= 256
    feat = np.uint8 if small else np.int64
    packed = {
        "x": g["x"].astype(feat),
        "edge_index": (g["edge_index"] + np.repeat(node_ptr[:-1], np.diff(edge_ptr))).astype(np.int32),
        "edge_attr": g["edge_attr"].astype(feat),
        "node_ptr": node_ptr,
        "edge_ptr": edge_ptr,
        "valid": valid,
        "errors": [g["failures"].get(r, "") for r in range(len(smiles))],
        "desc": out["descriptors"][valid] if desc_names else np.zeros((0, 0), np.float32),
    }
    if fingerprints:
        fps = [a for a, ok in zip(out["fp"], valid) if ok]
        packed["fp"] = np.stack(fps) if fps else np.zeros((0, FP_BYTES), np.uint8)
    return packed


_FORWARD = None  # the forward pass installed in this featurization worker (featurized_chunks' ``forward``)


def _install_forward(forward, threads: int) -> None:
    """Pool initializer: keep the (inherited) forward pass and give this worker ``threads`` torch threads."""
    global _FORWARD
    _FORWARD = forward
    torch.set_num_threads(threads)


def featurize_forward_job(
    smiles: list, spec: FeaturizerSpec, desc_names: list[str], fingerprints: bool = False
) -> dict:
    """Worker job with the forward pass: ``featurize_job`` then the installed forward -> values float32
    [R, C'], valid bool [R], errors list[str] (R); the graphs never leave the worker."""
    packed = featurize_job(smiles, spec, desc_names, fingerprints)
    return {"values": _FORWARD(packed), "valid": packed["valid"], "errors": packed["errors"]}


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
        yield Batch(
            x=x[n0:n1],
            edge_index=ei[:, e0:e1] - n0,
            edge_attr=ea[e0:e1],
            batch=batch,
            ptr=ptr,
            desc=desc[a:b],
            **extra,
        )


class _Ready:
    """A job's packed arrays, already computed (``predict_jobs`` takes each job's ``.get()``)."""

    def __init__(self, packed: dict):
        self.packed = packed

    def get(self) -> dict:
        return self.packed


def featurized_chunks(
    chunks: Iterator[tuple[int, pd.DataFrame]],
    smiles_col: str,
    spec: FeaturizerSpec,
    desc_names: list[str],
    workers: int,
    window: int = 2,
    fingerprints: bool = False,
    forward=None,
    forward_threads: int = 1,
) -> Iterator[tuple[int, pd.DataFrame, list]]:
    """(k, frame) -> (k, frame, jobs), each job's ``.get()`` giving its packed arrays (``featurize_job``).

    Jobs of ``JOB_ROWS`` SMILES go through ``imap_ordered``; with workers >= 1 they run in forked workers
    while the caller predicts earlier chunks, at most ``window`` chunks' jobs ahead of the chunk handed out
    (the input is read no further), so memory stays bounded by ``window`` + 1 chunks. 0 workers: this process.
    ``forward`` (``infer.Forward``), when ``forward.forkable`` (CPU) and workers >= 1: each worker also predicts its jobs
    with ``forward_threads`` torch threads, so every core featurizes and predicts and only the predictions
    travel back (``featurize_forward_job``: values, valid, errors).
    """
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        return
    frames: deque = deque()  # (k, frame, number of jobs) of each chunk whose jobs were read

    def jobs():
        for k, frame in itertools.chain([first], chunks):
            smiles = frame[smiles_col].tolist()
            starts = range(0, max(len(smiles), 1), JOB_ROWS)  # an empty chunk is one empty job
            frames.append((k, frame, len(starts)))
            for i in starts:
                yield smiles[i : i + JOB_ROWS], spec, desc_names, fingerprints

    per_chunk = -(-max(len(first[1]), 1) // JOB_ROWS)  # later chunks are no larger than the first
    done: list = []
    in_workers = forward is not None and forward.forkable and workers >= 1
    fn = featurize_forward_job if in_workers else featurize_job
    setup = dict(initializer=_install_forward, initargs=(forward, forward_threads)) if in_workers else {}
    for packed in imap_ordered(fn, jobs(), workers, window * per_chunk + 1, **setup):
        done.append(_Ready(packed))
        if len(done) == frames[0][2]:
            k, frame, _ = frames.popleft()
            yield k, frame, done
            done = []
