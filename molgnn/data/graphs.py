"""Packed graph storage and parallel, cached featurization of SMILES lists.

``PackedGraphs`` keeps every graph of a file in a few flat tensors (CSR-style offsets), so a million
molecules cost a few hundred MB, not a million Python objects, and the cache is one ``weights_only`` file.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from molgnn.chem.parse import ParseFailure
from molgnn.featurize.graph import GraphArrays, smiles_to_arrays
from molgnn.featurize.spec import FeaturizerSpec

log = logging.getLogger(__name__)

PARALLEL_MIN_ROWS = 2000
CHUNK_ROWS = 500


@dataclass
class PackedGraphs:
    """Graphs of M molecules in flat tensors.

    x long [sumN, Fa]; edge_index long [2, sumE] (local atom indices); edge_attr long [sumE, Fb];
    node_ptr / edge_ptr long [M + 1] offsets of each graph's atoms / edges.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    node_ptr: torch.Tensor
    edge_ptr: torch.Tensor

    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    def get(self, i: int) -> Data:
        """Graph ``i`` as a PyG ``Data`` (views, no copy)."""
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return Data(x=self.x[n0:n1], edge_index=self.edge_index[:, e0:e1], edge_attr=self.edge_attr[e0:e1])

    @classmethod
    def from_arrays(cls, graphs: list[GraphArrays], atom_width: int, bond_width: int) -> PackedGraphs:
        nodes = np.array([0] + [g.x.shape[0] for g in graphs], dtype=np.int64).cumsum()
        edges = np.array([0] + [g.edge_index.shape[1] for g in graphs], dtype=np.int64).cumsum()

        def cat(parts, shape, axis=0):
            return torch.from_numpy(np.concatenate(parts, axis=axis)) if parts else torch.zeros(shape, dtype=torch.long)

        return cls(
            x=cat([g.x for g in graphs], (0, atom_width)),
            edge_index=cat([g.edge_index for g in graphs], (2, 0), axis=1),
            edge_attr=cat([g.edge_attr for g in graphs], (0, bond_width)),
            node_ptr=torch.from_numpy(nodes),
            edge_ptr=torch.from_numpy(edges),
        )

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr")}

    @classmethod
    def from_dict(cls, d: dict) -> PackedGraphs:
        return cls(**{k: d[k] for k in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr")})


@dataclass
class FeaturizedSmiles:
    """Result of featurizing R SMILES: graphs for the valid ones and a reason for each failure.

    ``graph_index`` long [R]: index into ``graphs`` or -1; ``failures``: row -> reason.
    """

    graphs: PackedGraphs
    graph_index: torch.Tensor
    failures: dict[int, str]


def _featurize_chunk(args: tuple[list, FeaturizerSpec]) -> list[GraphArrays | ParseFailure]:
    smiles, spec = args
    return [smiles_to_arrays(s, spec) for s in smiles]


def featurize_smiles(smiles: list, spec: FeaturizerSpec, num_workers: int | None = None) -> FeaturizedSmiles:
    """Featurize a list of SMILES, in parallel worker processes when the list is large.

    ``num_workers=None`` uses every core for lists of at least 2,000 SMILES; 0 runs in this process.
    """
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    chunks = [smiles[i : i + CHUNK_ROWS] for i in range(0, len(smiles), CHUNK_ROWS)]
    if workers > 1 and len(smiles) >= PARALLEL_MIN_ROWS:
        with mp.get_context("fork").Pool(workers) as pool:
            results = [r for chunk in pool.imap(_featurize_chunk, [(c, spec) for c in chunks]) for r in chunk]
    else:
        results = [r for c in chunks for r in _featurize_chunk((c, spec))]
    return collect_results(results, spec)


def collect_results(results: list[GraphArrays | ParseFailure], spec: FeaturizerSpec) -> FeaturizedSmiles:
    """Pack per-row featurization results into a ``FeaturizedSmiles``."""
    graph_index = torch.full((len(results),), -1, dtype=torch.long)
    failures: dict[int, str] = {}
    good: list[GraphArrays] = []
    for row, result in enumerate(results):
        if isinstance(result, ParseFailure):
            failures[row] = result.reason
        else:
            graph_index[row] = len(good)
            good.append(result)
    packed = PackedGraphs.from_arrays(good, len(spec.atom_features), len(spec.bond_features))
    return FeaturizedSmiles(packed, graph_index, failures)


def cache_key(path: Path, smiles_col: str, spec: FeaturizerSpec) -> str:
    """Cache key: hash of the file's bytes + SMILES column + the spec fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(smiles_col.encode())
    return f"{digest.hexdigest()[:20]}-{spec.fingerprint()}"


def featurize_file_cached(
    path: Path, smiles_col: str, smiles: list, spec: FeaturizerSpec, cache_dir: str | Path | None,
    num_workers: int | None = None,
) -> FeaturizedSmiles:
    """``featurize_smiles`` with an on-disk cache keyed by ``cache_key``; a second run does no RDKit work."""
    if cache_dir is None:
        return featurize_smiles(smiles, spec, num_workers)
    cache_file = Path(cache_dir) / f"graphs-{cache_key(path, smiles_col, spec)}.pt"
    if cache_file.exists():
        try:
            blob = torch.load(cache_file, weights_only=True)
            log.info("graph cache hit: %s", cache_file)
            failures = {int(k): v for k, v in zip(blob["failure_rows"].tolist(), blob["failure_reasons"])}
            return FeaturizedSmiles(PackedGraphs.from_dict(blob), blob["graph_index"], failures)
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable graph cache %s: %s", cache_file, exc)
    result = featurize_smiles(smiles, spec, num_workers)
    blob = {**result.graphs.to_dict(), "graph_index": result.graph_index,
            "failure_rows": torch.tensor(sorted(result.failures), dtype=torch.long),
            "failure_reasons": [result.failures[k] for k in sorted(result.failures)]}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, cache_file)
    return result
