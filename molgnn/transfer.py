"""Encoder import (published and plain state dicts), bundles of heads on one encoder, embedding export.

Every file here is read by ``molgnn.weights.read_weights`` (``torch.load(weights_only=True)``): a file is
tensors and primitives, never code. Loading is strict: a missing, unexpected or mis-shaped key is an error
listing the keys, and a featurizer spec that differs from the expected one is an error listing the fields.

Bundle file (``molgnn-bundle``)::

    {"molgnn": make_header("bundle", encoder, heads=[head header of each ckpt, with encoder_fingerprint]),
     "state_dict": {"encoder.<k>": ..., "heads.<i>.<k>": ...}}       # i indexes header["heads"]

A bundle is read like any trained model, by ``molgnn.predictor.load_predictor`` (a ``Predictor``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from molgnn.checkpoint import (
    encoder_fingerprint,
    load_state_strict,
    loaded_encoder,
    loaded_head,
    make_header,
    read_model_file,
    save_atomic,
    sub_state,
)
from molgnn.data.graphs import featurize_smiles
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn import ENCODER_FAMILIES
from molgnn.weights import CHEMPROP_HINT, WeightsFile, as_weights

log = logging.getLogger(__name__)


def _family(family: str) -> type[nn.Module]:
    if family not in ENCODER_FAMILIES:
        raise MolgnnError(f"unknown encoder family {family!r}; known: {sorted(ENCODER_FAMILIES)}")
    return ENCODER_FAMILIES[family]


def plain_state_dict(path: str | Path | WeightsFile, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a plain PyTorch state dict file (or of its ``state_dict``), optionally only those
    under ``prefix.`` with the prefix removed. A molgnn checkpoint is refused here (its header knows more),
    and so is a Chemprop file (``encoder=chemprop`` reads its architecture too)."""
    weights = as_weights(path)
    path = weights.path
    if weights.header is not None:
        raise CheckpointError(
            f"{path}: this is a molgnn checkpoint; load it with encoder=pretrained "
            "encoder.path=... (its header carries the spec and architecture)"
        )
    if weights.kind == "chemprop":
        raise CheckpointError(f"{path}: a Chemprop model file, not a plain state dict; {CHEMPROP_HINT}")
    state = weights.state
    if prefix:
        state = sub_state(state, prefix)
        if not state:
            raise CheckpointError(f"{path}: no tensors under prefix {prefix!r}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: not a plain state dict: {len(bad)} entries are not tensors "
            f"({', '.join(map(str, bad[:8]))}); use encoder.prefix to select the weights"
        )
    return state


def load_foreign_encoder(family: str, path: str | Path | WeightsFile | None = None, **args) -> nn.Module:
    """A published encoder family (Hu et al. 2020, MolCLR, MiniMol) with its own featurizer spec.

    ``path``: their plain state dict, loaded strictly (every tensor, no missing or unexpected key);
    ``None`` builds the same architecture from scratch; "installed" reads the weights a pip package ships
    (MiniMol). ``args``: the family's construction arguments.
    """
    cls = _family(family)
    if not hasattr(cls, "default_spec"):
        raise MolgnnError(
            f"encoder family {family!r} has no featurizer of its own; use encoder=state_dict "
            "(family + args + spec) or encoder=pretrained for a molgnn checkpoint"
        )
    encoder = cls(spec=cls.default_spec(), **args)
    if path is None:
        return encoder
    if path == "installed" and hasattr(
        cls, "installed_weights"
    ):  # weights shipped in a pip package (MiniMol)
        path = cls.installed_weights()
    p = Path(path.path if isinstance(path, WeightsFile) else path).expanduser()
    if not isinstance(path, WeightsFile) and not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found (the published {family} weights: {cls.source})")
    state = plain_state_dict(path if isinstance(path, WeightsFile) else p)
    if hasattr(cls, "published_state"):  # the family's own tensors out of a larger published file
        state = cls.published_state(state)
    return _with_state(encoder, state, p, family, cls.source)


def load_state_dict_encoder(
    family: str,
    path: str | Path | WeightsFile,
    spec: FeaturizerSpec | None = None,
    args: dict | None = None,
    prefix: str | None = None,
) -> nn.Module:
    """``encoder=state_dict``: a plain PyTorch state dict plus the family, construction ``args`` and
    featurizer ``spec`` given in config (a foreign family uses its own spec when ``spec`` is None)."""
    cls = _family(family)
    if spec is None:
        if not hasattr(cls, "default_spec"):
            raise MolgnnError(f"encoder.spec is required for family {family!r}")
        spec = cls.default_spec()
    encoder = cls(spec=spec, **dict(args or {}))
    p = Path(path.path if isinstance(path, WeightsFile) else path).expanduser()
    state = plain_state_dict(path if isinstance(path, WeightsFile) else p, prefix)
    try:
        return _with_state(encoder, state, p, family, "state_dict")
    except CheckpointError as exc:
        hint = _guess_prefix(list(encoder.state_dict()), list(state))
        raise CheckpointError(
            f"{exc}{f' (the weights sit under {hint!r}: set encoder.prefix={hint})' if hint else ''}"
        ) from None


def _with_state(encoder: nn.Module, state: dict, path: Path, family: str, source: str) -> nn.Module:
    """``encoder`` with a plain state dict's tensors loaded strictly and its provenance recorded."""
    load_state_strict(encoder, state, path, f"{family} encoder")
    encoder.pretraining = {"source": source, "file": path.name}
    return encoder


def _guess_prefix(own: list[str], theirs: list[str]) -> str | None:
    """The prefix under which every key of ``own`` appears in ``theirs`` (e.g. "gnn"), if there is one."""
    key = own[0] if own else ""
    for candidate in theirs:
        if candidate.endswith("." + key):
            prefix = candidate[: -len(key) - 1]
            if all(f"{prefix}.{k}" in set(theirs) for k in own):
                return prefix
    return None


# ----------------------------------------------------------------------------------------------- bundles


def bundle_checkpoints(ckpts: list[str | Path], output: str | Path, names: list[str] | None = None) -> Path:
    """Assemble one encoder + the head of each ``molgnn-train`` checkpoint into a bundle file.

    Every head must have been trained on the same encoder weights (``encoder_fingerprint``); the first
    checkpoint's encoder is the bundle's. A head trained on another encoder is an error naming its file.
    """
    if not ckpts:
        raise MolgnnError("molgnn-bundle: no checkpoints given (heads=[a.ckpt,b.ckpt])")
    if names is not None and len(names) != len(ckpts):
        raise MolgnnError(f"names has {len(names)} entries for {len(ckpts)} checkpoints")
    encoder, ref, heads, state, pretraining = None, None, [], {}, None
    for i, path in enumerate(ckpts):
        weights = read_model_file(
            path, "a bundle is built from molgnn-train checkpoints (.ckpt, one head each)"
        )
        header = weights.header
        if encoder is None:
            encoder, ref = loaded_encoder(header, weights.state, path), path
            fingerprint, pretraining = encoder_fingerprint(encoder), header.get("pretraining")
        _check_same_encoder(header, fingerprint, encoder.spec, path, ref)
        head_info = dict(header["heads"][0])
        head_info["name"] = names[i] if names else head_info.get("name") or f"head{i}"
        head = loaded_head(head_info, sub_state(weights.state, "head"), path, "head")
        heads.append(head_info)
        state.update({f"heads.{i}.{k}": v.detach().cpu() for k, v in head.state_dict().items()})
    duplicate = sorted({h["name"] for h in heads if [x["name"] for x in heads].count(h["name"]) > 1})
    if duplicate:
        raise MolgnnError(f"two heads are named {duplicate[0]!r}; give each a name with names=[...]")
    state.update({f"encoder.{k}": v.detach().cpu() for k, v in encoder.state_dict().items()})
    bundle_header = make_header("bundle", encoder, heads=heads, pretraining=pretraining)
    return save_atomic({"molgnn": bundle_header, "state_dict": state}, output)


def _check_same_encoder(header: dict, fingerprint: str, spec: FeaturizerSpec, path, ref) -> None:
    head = header["heads"][0]
    if head.get("encoder_fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: head {head.get('name')!r} was trained on encoder {head.get('encoder_fingerprint')}, not "
            f"on the bundle's encoder {fingerprint} (from {ref}); train every head with task.freeze_encoder=true "
            "on the same encoder"
        )
    spec.require_equal(
        FeaturizerSpec.from_dict(header["spec"]),
        f"{path}: featurizer spec differs from {ref}'s",
        CheckpointError,
    )


# ------------------------------------------------------------------------------------- embedding export


@dataclass
class Embeddings:
    """Embeddings of R input rows: ``values`` float32 [R, d] (NaN rows where invalid); ``failures``: row ->
    reason."""

    values: np.ndarray
    failures: dict[int, str]


@torch.no_grad()
def embed_smiles(
    encoder: nn.Module,
    smiles: list,
    batch_size: int = 256,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    chunk_rows: int = 20000,
) -> Embeddings:
    """One embedding per input SMILES, in order. Invalid SMILES get a NaN row and a reason (never an
    exception). Featurizes and encodes ``chunk_rows`` at a time so memory stays bounded."""
    encoder = encoder.to(device).eval()
    values = np.full((len(smiles), encoder.out_dim), np.nan, dtype=np.float32)
    failures: dict[int, str] = {}
    for start in range(0, len(smiles), chunk_rows):
        feats = featurize_smiles(smiles[start : start + chunk_rows], encoder.spec, num_workers)
        failures.update({start + r: reason for r, reason in feats.failures.items()})
        rows = (feats.graph_index >= 0).nonzero().flatten()
        for b in range(0, rows.numel(), batch_size):
            chunk = rows[b : b + batch_size]
            batch = Batch.from_data_list([feats.graphs.get(int(feats.graph_index[r])) for r in chunk]).to(
                device
            )
            values[start + chunk.numpy()] = encoder(batch).float().cpu().numpy()
    return Embeddings(values, failures)
