"""The molgnn artifact format: a header of primitives + tensors, loadable with ``weights_only=True``.

Header (``ckpt["molgnn"]``)::

    format_version: int          bumped on incompatible change; newer files are refused with a clear error
    kind: "encoder" | "pretrain" | "model" | "bundle" | "ensemble"
    spec: FeaturizerSpec.to_dict()
    encoder: {"family": str, "args": {...}, "fingerprint": str}
    heads: [{"name": str, "family": str, "args": {...}, "target_names": [...], "scaler": {"mean", "std"
             [, "transforms": [T] (molgnn.data.target_transform)]}, "encoder_fingerprint": str}]        (model / bundle)
    pretraining: {...} | None    objective, corpus (encoder files)
    versions: {"molgnn", "torch", "torch_geometric", "rdkit"}

An encoder file (``encoder.pt``) is ``{"molgnn": header, "state_dict": encoder tensors}``; a Lightning
checkpoint carries the header next to Lightning's own keys and the task's state dict (``encoder.*``,
``head.*``).

Files are read by ``molgnn.weights.read_weights`` (the one reader: ``weights_only=True``, header checked);
the loaders here dispatch on its ``kind`` and build with ``loaded_encoder`` / ``loaded_head``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

import molgnn
from molgnn.errors import CheckpointError
from molgnn.storage import atomic_write
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn import ENCODER_FAMILIES, HEAD_FAMILIES
from molgnn.nn.readout import readout_kinds
from molgnn.weights import FORMAT_VERSION, WeightsFile, as_weights, read_weights
from molgnn.weights import read_header, safe_load  # noqa: F401 (re-exported: tests and tools read with them)


def library_versions() -> dict[str, str]:
    import rdkit
    import torch_geometric

    return {
        "molgnn": molgnn.__version__,
        "torch": str(torch.__version__),
        "torch_geometric": str(torch_geometric.__version__),
        "rdkit": str(rdkit.__version__),
    }


def encoder_fingerprint(encoder: nn.Module) -> str:
    """Identity of an encoder's weights: a hash over its family, args and every tensor's bytes."""
    digest = hashlib.sha256(f"{encoder.family}{sorted(encoder.args.items())}".encode())
    for key, value in sorted(encoder.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_header(encoder: nn.Module) -> dict:
    return {"family": encoder.family, "args": dict(encoder.args), "fingerprint": encoder_fingerprint(encoder)}


def head_header(name: str, head: nn.Module, target_names: list[str], scaler, encoder_fp: str) -> dict:
    """A head's header entry; ``scaler``: anything with mean / std [T] (and ``transforms``, a TargetScaler's
    per-target transform records, written only when set, so files without one keep the old layout)."""
    scale = {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()}
    if getattr(scaler, "transforms", None) is not None:
        scale["transforms"] = scaler.transforms
    return {
        "name": name,
        "family": head.family,
        "args": dict(head.args),
        "target_names": list(target_names),
        "scaler": scale,
        "encoder_fingerprint": encoder_fp,
    }


def make_header(
    kind: str, encoder: nn.Module, heads: list[dict] | None = None, pretraining: dict | None = None
) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "spec": encoder.spec.to_dict(),
        "encoder": encoder_header(encoder),
        "heads": heads or [],
        "pretraining": pretraining,
        "versions": library_versions(),
    }


def build_encoder(header: dict, path: str | Path = "checkpoint") -> nn.Module:
    """Construct (untrained) the encoder a header describes, from the allow-listed families only."""
    family = header["encoder"]["family"]
    if family not in ENCODER_FAMILIES:
        raise CheckpointError(f"{path}: unknown encoder family {family!r}; known: {sorted(ENCODER_FAMILIES)}")
    spec = FeaturizerSpec.from_dict(header["spec"])
    return ENCODER_FAMILIES[family](spec=spec, **header["encoder"]["args"])


def with_dropout(header: dict, dropout: float, path: str | Path) -> dict:
    """A copy of ``header`` whose encoder arguments carry ``dropout`` (0 <= dropout < 1)."""
    args = header["encoder"]["args"]
    if "dropout" not in args:
        raise CheckpointError(
            f"{path}: encoder.dropout: the {header['encoder']['family']} encoder in this file "
            "has no dropout argument"
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise CheckpointError(f"encoder.dropout must be in [0, 1), got {dropout}")
    encoder = {**header["encoder"], "args": {**args, "dropout": float(dropout)}}
    return {**header, "encoder": encoder}


def with_readout(header: dict, readout: str, path: str | Path) -> dict:
    """A copy of ``header`` whose encoder pools its atoms with ``readout`` (e.g. "sum+mean"). Accepted only
    when the encoder built with it has the same tensor names and shapes as the saved one: no saved weight
    (attention pooling, a batch norm or projection after the readout) depends on the pooling."""
    args, family = header["encoder"]["args"], header["encoder"]["family"]
    if "readout" not in args:
        raise CheckpointError(
            f"{path}: encoder.readout: the {family} encoder in this file has no readout argument"
        )
    try:
        readout_kinds(readout)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    changed = {**header, "encoder": {**header["encoder"], "args": {**args, "readout": readout}}}
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # shapes only: no memory, no RNG draw
        saved, wanted = (
            {k: v.shape for k, v in build_encoder(h, path).state_dict().items()} for h in (header, changed)
        )
    differing = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if differing:
        why = (
            "attention pooling has weights"
            if any(k.startswith("readout.") for k in differing)
            else "saved weights read the graph embedding"
        )
        raise CheckpointError(
            f"{path}: encoder.readout={readout!r}: the file's readout {args['readout']!r} cannot be replaced "
            f"({why}: {', '.join(differing[:4])})"
        )
    return changed


def build_head(head: dict, path: str | Path = "checkpoint") -> nn.Module:
    if head["family"] not in HEAD_FAMILIES:
        raise CheckpointError(
            f"{path}: unknown head family {head['family']!r}; known: {sorted(HEAD_FAMILIES)}"
        )
    return HEAD_FAMILIES[head["family"]](**head["args"])


def load_state_strict(module: nn.Module, state: dict, path: str | Path, what: str) -> None:
    """Load every tensor or fail listing missing / unexpected / mis-shaped keys (no partial loading)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        ):
            if keys:
                parts.append(f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
        raise CheckpointError(f"{path}: {what} does not match: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def sub_state(state: dict, prefix: str) -> dict:
    """Tensors of ``state`` under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def save_atomic(obj: dict, path: str | Path) -> Path:
    """torch.save through ``storage.atomic_write``: a killed write never leaves a complete-looking file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def export_encoder(encoder: nn.Module, path: str | Path, pretraining: dict | None = None) -> Path:
    """Write ``encoder.pt``: header + encoder tensors."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return save_atomic(
        {"molgnn": make_header("encoder", encoder, pretraining=pretraining), "state_dict": state}, path
    )


def loaded_encoder(header: dict, state: dict, path: str | Path) -> nn.Module:
    """The encoder ``header`` describes with its tensors loaded strictly: the whole ``state`` of an encoder
    file, ``encoder.*`` of any other kind."""
    encoder = build_encoder(header, path)
    load_state_strict(
        encoder, state if header["kind"] == "encoder" else sub_state(state, "encoder"), path, "encoder"
    )
    return encoder


def loaded_head(info: dict, state: dict, path: str | Path, what: str) -> nn.Module:
    """The head a head header describes with ``state`` (its own tensors, prefix removed) loaded strictly."""
    head = build_head(info, path)
    load_state_strict(head, state, path, what)
    return head


def read_model_file(path: str | Path, use: str) -> WeightsFile:
    """A molgnn-train checkpoint (kind "model", one head); any other file is an error ending in ``use``."""
    weights = read_weights(path)
    header = weights.require(("model",), use)
    if len(header["heads"]) != 1:
        raise CheckpointError(
            f"{path}: a model checkpoint must have exactly one head, found {len(header['heads'])}"
        )
    return weights


def load_encoder(
    path: str | Path | WeightsFile,
    expect_spec: FeaturizerSpec | None = None,
    dropout: float | None = None,
    readout: str | None = None,
) -> nn.Module:
    """Load an encoder from a molgnn ``encoder.pt``, a model/bundle file or a Lightning ``.ckpt``.

    ``expect_spec``: when given, a different featurizer spec is an error listing every differing field.
    ``dropout``: when given, replaces the dropout rate the encoder was saved with (fine-tuning with dropout
    after pretraining without it); it changes no weight. ``readout``: when given, replaces the atom pooling
    (``with_readout``; e.g. "sum+mean" for frozen embeddings); it changes no weight either.
    """
    weights = as_weights(path)
    path, header = weights.path, weights.molgnn_header()
    if dropout is not None:
        header = with_dropout(header, dropout, path)
    if readout is not None:
        header = with_readout(header, readout, path)
    if expect_spec is not None:
        expect_spec.require_equal(
            FeaturizerSpec.from_dict(header["spec"]),
            f"{path}: featurizer spec differs from the run's",
            CheckpointError,
        )
    encoder = loaded_encoder(header, weights.state, path)
    encoder.pretraining = header.get("pretraining")
    return encoder


def attach_calibration(path: str | Path, record: dict, domain: nn.Module) -> Path:
    """Add a head's calibration record (``heads[0]["calibration"]``) and the domain index tensors
    (``state_dict["domain.*"]``) to a model checkpoint, rewritten atomically."""
    weights = read_model_file(path, "a calibration is stored in a molgnn-train checkpoint")
    weights.header["heads"][0]["calibration"] = record
    weights.state.update({f"domain.{k}": v.detach().cpu() for k, v in domain.state_dict().items()})
    return save_atomic(weights.blob, path)


def write_ensemble(paths: list[str | Path], out: str | Path) -> Path:
    """One file holding several trained models (kind "ensemble"): header = the first member's header with
    ``kind`` "ensemble" and ``members`` [every member's header]; tensors ``members.<i>.<key>``. Lightning's
    optimizer and loop states are left out."""
    headers, state = [], {}
    for i, path in enumerate(paths):
        weights = read_model_file(path, "an ensemble is made of molgnn-train checkpoints")
        headers.append(weights.header)
        state.update({f"members.{i}.{k}": v for k, v in weights.state.items()})
    return save_atomic(
        {"molgnn": {**headers[0], "kind": "ensemble", "members": headers}, "state_dict": state}, out
    )
