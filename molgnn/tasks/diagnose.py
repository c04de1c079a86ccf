"""Oversmoothing diagnostics of an encoder on held-out molecules: one record with the measures of every layer.

molecules (PyG ``Data`` graphs) -> seeded sample of at most ``max_molecules`` -> one batch
  -> encoder layer states (``molgnn.nn.oversmoothing.encoder_layer_states``) -> measures per layer
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from molgnn.nn.oversmoothing import encoder_layer_states, layer_measures

VERSION = 1


def sample_molecules(graphs: Sequence[Data], max_molecules: int, seed: int = 0) -> list[Data]:
    """At most ``max_molecules`` of ``graphs`` (a seeded sample, in their original order)."""
    if len(graphs) <= max_molecules:
        return [graphs[i] for i in range(len(graphs))]
    keep = np.sort(np.random.default_rng(seed).choice(len(graphs), max_molecules, replace=False))
    return [graphs[int(i)] for i in keep]


def _summary(layers: list[dict]) -> dict:
    """First-vs-last layer figures: the collapse a user should look at first."""
    first, last = layers[0], layers[-1]
    energy0 = first["relative_dirichlet_energy"]
    return {
        "last_node_cosine": last["node_cosine"],
        "last_relative_dirichlet_energy": last["relative_dirichlet_energy"],
        "energy_ratio_last_to_first": (
            last["relative_dirichlet_energy"] / energy0 if energy0 and math.isfinite(energy0) else None
        ),
        "last_node_effective_rank": last["node_effective_rank"],
        "last_graph_effective_rank": last["graph_effective_rank"],
    }


@torch.no_grad()
def diagnose(encoder: nn.Module, graphs: Sequence[Data], max_molecules: int = 256, seed: int = 0) -> dict:
    """Measures per layer of ``encoder`` (eval mode) on a sample of ``graphs``.

    Returns {"version", "encoder", "encoder_args", "molecules", "atoms", "layers": [{"layer": l, "dim": d,
    <measure>: float, ...}, ...] (input side first), "summary": {...}}.
    """
    picked = sample_molecules(graphs, max_molecules, seed)
    if not picked:
        raise ValueError("no valid molecules to diagnose the encoder on")
    device = next(encoder.parameters()).device
    keep = [Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr) for g in picked]
    batch = Batch.from_data_list(keep).to(device)
    was_training = encoder.training
    encoder.eval()
    try:
        states = encoder_layer_states(encoder, batch)
    finally:
        encoder.train(was_training)
    layers = [
        {
            "layer": i,
            "dim": int(s.size(1)),
            **layer_measures(s.float().cpu(), batch.edge_index.cpu(), batch.batch.cpu(), batch.num_graphs),
        }
        for i, s in enumerate(states)
    ]
    return {
        "version": VERSION,
        "encoder": encoder.family,
        "encoder_args": {k: v for k, v in encoder.args.items() if _plain(v)},
        "molecules": batch.num_graphs,
        "atoms": int(batch.x.size(0)),
        "layers": layers,
        "summary": _summary(layers),
    }


def _plain(value) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None
