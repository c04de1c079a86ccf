"""Pretraining objectives: small modules with pretext heads, each ``forward(encoder, batch) -> (loss, logs)``.

Build-time facts (embedding width, featurizer spec, number of descriptors / teacher columns) come in a ``PretrainContext``;
YAML holds only the objectives' own hyperparameters. The pretext heads live here, never in the encoder, so
an exported encoder carries none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from molgnn.data.augment import view_batch
from molgnn.data.graphs import featurize_smiles
from molgnn.errors import MolgnnError
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.tasks.pretrain.augment import (
    drop_edges,
    mask_atoms,
    random_bond_keep,
    random_node_mask,
    remove_subgraph,
)


@dataclass(frozen=True)
class PretrainContext:
    """``dim``: encoder.out_dim (graph embedding width); ``spec``: the encoder's featurizer spec;
    ``num_descriptors``: D of data.desc; ``num_teacher``: T of data.teacher; ``node_dim``: width of the atom
    states (``node_width``), which differs from ``dim`` under a multi-pooling readout (0: same as ``dim``)."""

    dim: int
    spec: FeaturizerSpec
    num_descriptors: int = 0
    num_teacher: int = 0
    node_dim: int = 0


def node_width(encoder: nn.Module) -> int:
    """Width of the rows of ``encoder.node_embeddings``, read off one small molecule (any encoder family)."""
    from torch_geometric.data import Batch

    graphs = featurize_smiles(["CCO"], encoder.spec, 0).graphs
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        width = encoder.node_embeddings(Batch.from_data_list([graphs.get(0)])).size(1)
    encoder.train(was_training)
    return int(width)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Module:
    """[*, in_dim] -> [*, out_dim]: one hidden ReLU layer of width ``hidden``; ``hidden=0``: a linear map (the
    targets must then be linear in the embedding, so a linear probe can read them back)."""
    if hidden == 0:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


# what a node / an edge is asked to predict when not named: an atom's element, a bond's type; in the line
# graph (docs/graphs.md) nodes are bonds and edges are atoms, so the two swap places
NODE_TARGETS = ("atomic_num", "element_symbol", "bond_type")  # element_symbol: the MiniMol featurizer
EDGE_TARGETS = ("bond_type", "atomic_num")


def _feature_index(vocabs, name: str | None, preferred: tuple[str, ...] = ()) -> int:
    """Column of feature ``name``, or (``name=None``) of the first of ``preferred`` the vocabs have."""
    names = [v.name for v in vocabs]
    if name is None:
        name = next((p for p in preferred if p in names), None)
        if name is None:
            raise ValueError(f"featurizer has none of {list(preferred)} to predict; it has {names}")
    if name not in names:
        raise ValueError(f"featurizer has no feature {name!r} to predict; it has {names}")
    return names.index(name)


class AttributeMasking(nn.Module):
    """Hu et al. 2020: mask ``mask_rate`` of the atoms (whole feature row -> unknown buckets) and the bonds
    touching them; predict the masked atoms' element (cross-entropy over the ``atom_target`` vocabulary) and,
    with ``predict_bonds``, the masked bonds' type from the sum of their two atoms' embeddings. Targets left
    unnamed follow the graph: a line graph's nodes (bonds) predict their bond type, its edges the element."""

    def __init__(
        self,
        context: PretrainContext,
        mask_rate: float = 0.15,
        predict_bonds: bool = True,
        atom_target: str | None = None,
        bond_target: str | None = None,
    ):
        super().__init__()
        spec = context.spec
        self.spec, self.mask_rate, self.predict_bonds = spec, mask_rate, predict_bonds
        self.atom_col = _feature_index(spec.atom_features, atom_target, NODE_TARGETS)
        self.bond_col = _feature_index(spec.bond_features, bond_target, EDGE_TARGETS)
        node_dim = context.node_dim or context.dim
        self.atom_head = nn.Linear(node_dim, spec.atom_features[self.atom_col].size)
        self.bond_head = (
            nn.Linear(node_dim, spec.bond_features[self.bond_col].size) if predict_bonds else None
        )

    def forward(self, encoder: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nodes = random_node_mask(batch, self.mask_rate)
        src, dst = batch.edge_index
        edges = nodes[src] | nodes[dst]
        h = encoder.node_embeddings(
            mask_atoms(batch, nodes, self.spec, edges if self.predict_bonds else None)
        )
        logits = self.atom_head(h[nodes])
        target = batch.x[nodes, self.atom_col]
        loss = F.cross_entropy(logits, target)
        logs = {"atom_acc": (logits.argmax(1) == target).float().mean()}
        if self.bond_head is not None:
            pair = edges.clone()
            pair[1::2] = False  # one edge per masked bond
            if pair.any():
                bond_logits = self.bond_head(h[src[pair]] + h[dst[pair]])
                bond_target = batch.edge_attr[pair, self.bond_col]
                loss = loss + F.cross_entropy(bond_logits, bond_target)
                logs["bond_acc"] = (bond_logits.argmax(1) == bond_target).float().mean()
        return loss, logs


class Contrastive(nn.Module):
    """GraphCL / MolCLR: two augmented views of each molecule (atom masking, then bond deletion or
    subgraph removal, chosen at random per view), NT-Xent over projected graph embeddings."""

    def __init__(
        self,
        context: PretrainContext,
        proj_dim: int = 128,
        temperature: float = 0.1,
        atom_mask_rate: float = 0.25,
        bond_drop_rate: float = 0.25,
        subgraph_fraction: float = 0.25,
    ):
        super().__init__()
        self.spec, self.temperature = context.spec, temperature
        self.atom_mask_rate, self.bond_drop_rate, self.subgraph_fraction = (
            atom_mask_rate,
            bond_drop_rate,
            subgraph_fraction,
        )
        self.projection = _mlp(context.dim, context.dim, proj_dim)

    def view(self, batch):
        out = mask_atoms(batch, random_node_mask(batch, self.atom_mask_rate), self.spec)
        if torch.rand(()) < 0.5:
            return drop_edges(
                out, random_bond_keep(out.edge_index.size(1), self.bond_drop_rate, out.x.device)
            )
        return remove_subgraph(out, self.subgraph_fraction, self.spec)

    def forward(self, encoder: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z1 = F.normalize(self.projection(encoder.embed(self.view(batch))), dim=1)
        z2 = F.normalize(self.projection(encoder.embed(self.view(batch))), dim=1)
        loss, acc = nt_xent(z1, z2, self.temperature)
        return loss, {"pair_acc": acc}


class Agreement(Contrastive):
    """Cross-construction agreement (docs/graphs.md): the two views of each molecule are its main graph and
    its graph under another construction (``graph.augment``: ``batch.view_*``, ``molgnn.data.augment``),
    NT-Xent over projected graph embeddings, so the embedding stops depending on how the molecule was written
    down. ``corrupt``: also apply ``Contrastive``'s atom masking and bond/subgraph removal to each view."""

    def __init__(self, context: PretrainContext, corrupt: bool = False, **contrastive):
        super().__init__(context, **contrastive)
        self.corrupt = corrupt

    def forward(self, encoder: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if getattr(batch, "view_x", None) is None:
            raise MolgnnError(  # a config fix, printed as one line by the CLI
                "the agreement objective needs a second construction of each molecule: set graph.augment, "
                "e.g. graph.augment=[explicit_h,kekule]"
            )
        views = (batch, view_batch(batch))
        if self.corrupt:
            views = tuple(self.view(v) for v in views)
        z1, z2 = (F.normalize(self.projection(encoder.embed(v)), dim=1) for v in views)
        loss, acc = nt_xent(z1, z2, self.temperature)
        return loss, {"pair_acc": acc, "cosine": (z1 * z2).sum(1).mean()}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent (SimCLR) for unit vectors z1, z2 float [B, p]: each view must pick its partner among 2B-1."""
    b = z1.size(0)
    z = torch.cat([z1, z2])
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target), (sim.argmax(1) == target).float().mean()


class _VectorRegression(nn.Module):
    """Regress a standardized per-molecule vector ``batch.<target>`` float [B, K] from the graph embedding
    with an MLP head (``hidden_dim=0``: a linear head) (MSE); logs R² over the batch."""

    target = ""

    def __init__(self, size: int, dim: int, hidden_dim: int):
        super().__init__()
        self.head = _mlp(dim, hidden_dim, size)

    def forward(self, encoder: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred, y = self.head(encoder.embed(batch)), getattr(batch, self.target)
        loss = F.mse_loss(pred, y)
        r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum().clamp(min=1e-8)
        return loss, {"r2": r2}


class DescriptorPrediction(_VectorRegression):
    """CheMeleon idea: regress the standardized RDKit 2D descriptors ``batch.desc`` float [B, D]."""

    target = "desc"

    def __init__(self, context: PretrainContext, hidden_dim: int = 512):
        if context.num_descriptors <= 0:
            raise ValueError("descriptor prediction needs descriptors on the corpus (data.descriptors=true)")
        super().__init__(context.num_descriptors, context.dim, hidden_dim)


class TeacherDistillation(_VectorRegression):
    """Distillation: regress a published encoder's standardized embedding of each molecule
    (``batch.teacher`` float [B, T], from ``data.teacher``, ``molgnn.data.teacher``)."""

    target = "teacher"

    def __init__(self, context: PretrainContext, hidden_dim: int = 512):
        if context.num_teacher <= 0:
            raise MolgnnError(  # a config fix, printed as one line by the CLI
                "the distillation objective needs teacher embeddings of the corpus: data.teacher=<.npy made by "
                "molgnn-embed input=<corpus> encoder=minimol output=teacher.npy>"
            )
        super().__init__(context.num_teacher, context.dim, hidden_dim)
