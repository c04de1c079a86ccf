"""Packed graph storage: the graphs of a SMILES list in a few flat tensors, built from per-molecule arrays
(``pack_numpy``, in featurization workers), joined across chunks and written to caches as plain tensors.

``PackedGraphs`` keeps every graph of a file in a few flat tensors (CSR-style offsets), so a million
molecules cost a few hundred MB, not a million Python objects, and the cache is one ``weights_only`` file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from molgnn.chem.parse import ParseFailure
from molgnn.featurize.graph import GraphArrays
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.storage import file_digest

log = logging.getLogger(__name__)


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

    def to_blob(self) -> dict:
        """Tensors and lists only (a ``weights_only`` torch file)."""
        rows = sorted(self.failures)
        return {
            **self.graphs.to_dict(),
            "graph_index": self.graph_index,
            "failure_rows": torch.tensor(rows, dtype=torch.long),
            "failure_reasons": [self.failures[k] for k in rows],
        }

    @classmethod
    def from_blob(cls, blob: dict) -> FeaturizedSmiles:
        failures = {int(k): v for k, v in zip(blob["failure_rows"].tolist(), blob["failure_reasons"])}
        return cls(PackedGraphs.from_dict(blob), blob["graph_index"], failures)


def pack_numpy(results: list[GraphArrays | ParseFailure], spec: FeaturizerSpec) -> dict:
    """Per-row results -> a few numpy arrays + failures. Numpy only: safe inside forked workers, where
    torch's thread pools must not be touched."""
    failures = {row: r.reason for row, r in enumerate(results) if isinstance(r, ParseFailure)}
    good = [r for r in results if not isinstance(r, ParseFailure)]
    ok = np.array([not isinstance(r, ParseFailure) for r in results], dtype=bool)
    graph_index = np.full(len(results), -1, dtype=np.int64)
    graph_index[ok] = np.arange(int(ok.sum()))
    fa, fb = len(spec.atom_features), len(spec.bond_features)
    return {
        "x": np.concatenate([g.x for g in good]) if good else np.zeros((0, fa), np.int64),
        "edge_index": np.concatenate([g.edge_index for g in good], axis=1)
        if good
        else np.zeros((2, 0), np.int64),
        "edge_attr": np.concatenate([g.edge_attr for g in good]) if good else np.zeros((0, fb), np.int64),
        "node_ptr": np.concatenate([[0], np.cumsum([g.x.shape[0] for g in good], dtype=np.int64)]),
        "edge_ptr": np.concatenate([[0], np.cumsum([g.edge_index.shape[1] for g in good], dtype=np.int64)]),
        "graph_index": graph_index,
        "failures": failures,
    }


def from_numpy(packed: dict) -> FeaturizedSmiles:
    graphs = PackedGraphs(
        **{
            k: torch.from_numpy(np.ascontiguousarray(packed[k]).astype(np.int64, copy=False))
            for k in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr")
        }
    )
    return FeaturizedSmiles(graphs, torch.from_numpy(packed["graph_index"]), packed["failures"])


def featurize_smiles(smiles: list, spec: FeaturizerSpec, num_workers: int | None = None) -> FeaturizedSmiles:
    """Graphs of a list of SMILES (``engine.featurize`` with graphs only), in parallel worker processes when
    the list is large: ``num_workers=None`` every core, 0 this process."""
    from molgnn.data.engine import Products, featurize  # the engine builds on this module's packing

    return featurize(smiles, Products(spec), num_workers).graphs


def concat_chunks(chunks: list[FeaturizedSmiles], spec: FeaturizerSpec) -> FeaturizedSmiles:
    """Join consecutive featurized chunks into one (rows and graphs renumbered)."""
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:
        return collect_results([], spec)
    rows = graphs = 0
    index_parts, failures = [], {}
    for chunk in chunks:
        index_parts.append(torch.where(chunk.graph_index >= 0, chunk.graph_index + graphs, chunk.graph_index))
        failures.update({row + rows: reason for row, reason in chunk.failures.items()})
        rows += chunk.graph_index.numel()
        graphs += len(chunk.graphs)
    parts = [c.graphs for c in chunks]
    packed = PackedGraphs(
        x=torch.cat([p.x for p in parts]),
        edge_index=torch.cat([p.edge_index for p in parts], dim=1),
        edge_attr=torch.cat([p.edge_attr for p in parts]),
        node_ptr=_cat_offsets([p.node_ptr for p in parts]),
        edge_ptr=_cat_offsets([p.edge_ptr for p in parts]),
    )
    return FeaturizedSmiles(packed, torch.cat(index_parts), failures)


def _cat_offsets(ptrs: list[torch.Tensor]) -> torch.Tensor:
    out, shift = [ptrs[0]], ptrs[0][-1]
    for ptr in ptrs[1:]:
        out.append(ptr[1:] + shift)
        shift = shift + ptr[-1]
    return torch.cat(out)


def collect_results(results: list[GraphArrays | ParseFailure], spec: FeaturizerSpec) -> FeaturizedSmiles:
    """Pack per-row featurization results into a ``FeaturizedSmiles``."""
    return from_numpy(pack_numpy(results, spec))


def table_key(path: str | Path, smiles_col: str) -> str:
    """Names a table's SMILES for caches: hash of the file's bytes + hash of the SMILES column name."""
    return f"{file_digest(path)}-{hashlib.sha256(smiles_col.encode()).hexdigest()[:6]}"
