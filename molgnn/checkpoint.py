"""The molgnn artifact format: a header of primitives + tensors, loadable with ``weights_only=True``.

Header (``ckpt["molgnn"]``)::

    format_version: int          bumped on incompatible change; newer files are refused with a clear error
    kind: "encoder" | "model" | "bundle"
    spec: FeaturizerSpec.to_dict()
    encoder: {"family": str, "args": {...}, "fingerprint": str}
    heads: [{"name": str, "family": str, "args": {...}, "target_names": [...], "scaler": {"mean", "std"},
             "encoder_fingerprint": str}]        (model / bundle)
    pretraining: {...} | None    objective, corpus (encoder files)
    versions: {"molgnn", "torch", "torch_geometric", "rdkit"}

An encoder file (``encoder.pt``) is ``{"molgnn": header, "state_dict": encoder tensors}``; a Lightning
checkpoint carries the header next to Lightning's own keys and the task's state dict (``encoder.*``,
``head.*``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

import molgnn
from molgnn.errors import CheckpointError
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn import ENCODER_FAMILIES, HEAD_FAMILIES

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import rdkit
    import torch_geometric

    return {"molgnn": molgnn.__version__, "torch": str(torch.__version__),
            "torch_geometric": str(torch_geometric.__version__), "rdkit": str(rdkit.__version__)}


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
    return {"name": name, "family": head.family, "args": dict(head.args), "target_names": list(target_names),
            "scaler": {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
            "encoder_fingerprint": encoder_fp}


def make_header(kind: str, encoder: nn.Module, heads: list[dict] | None = None,
                pretraining: dict | None = None) -> dict:
    return {"format_version": FORMAT_VERSION, "kind": kind, "spec": encoder.spec.to_dict(),
            "encoder": encoder_header(encoder), "heads": heads or [], "pretraining": pretraining,
            "versions": library_versions()}


def safe_load(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with one clear error for every way a file can be unusable."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise CheckpointError(f"{p}: refused: the file holds pickled objects that are not plain tensors or "
                              f"primitives ({first[:160]}); molgnn never executes code from a checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as exc:
        raise CheckpointError(f"{p}: not a readable checkpoint (truncated or not a torch file): "
                              f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__}") from None
    if not isinstance(blob, dict):
        raise CheckpointError(f"{p}: not a checkpoint (top level is {type(blob).__name__}, expected a dict)")
    return blob


def read_header(blob: dict, path: str | Path) -> dict:
    """The molgnn header of a loaded checkpoint, checked for kind and format version."""
    header = blob.get("molgnn")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: no molgnn header; for a plain state dict use encoder=state_dict with "
                              "the encoder arguments in config")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this molgnn "
                              f"supports ({FORMAT_VERSION}); upgrade molgnn")
    return header


def build_encoder(header: dict, path: str | Path = "checkpoint") -> nn.Module:
    """Construct (untrained) the encoder a header describes, from the allow-listed families only."""
    family = header["encoder"]["family"]
    if family not in ENCODER_FAMILIES:
        raise CheckpointError(f"{path}: unknown encoder family {family!r}; known: {sorted(ENCODER_FAMILIES)}")
    spec = FeaturizerSpec.from_dict(header["spec"])
    return ENCODER_FAMILIES[family](spec=spec, **header["encoder"]["args"])


def build_head(head: dict, path: str | Path = "checkpoint") -> nn.Module:
    if head["family"] not in HEAD_FAMILIES:
        raise CheckpointError(f"{path}: unknown head family {head['family']!r}; known: {sorted(HEAD_FAMILIES)}")
    return HEAD_FAMILIES[head["family"]](**head["args"])


def load_state_strict(module: nn.Module, state: dict, path: str | Path, what: str) -> None:
    """Load every tensor or fail listing missing / unexpected / mis-shaped keys (no partial loading)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if keys:
                parts.append(f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
        raise CheckpointError(f"{path}: {what} does not match: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def sub_state(state: dict, prefix: str) -> dict:
    """Tensors of ``state`` under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def save_atomic(obj: dict, path: str | Path) -> Path:
    """torch.save to a temporary name, then rename: a killed write never leaves a complete-looking file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, p)
    return p


def export_encoder(encoder: nn.Module, path: str | Path, pretraining: dict | None = None) -> Path:
    """Write ``encoder.pt``: header + encoder tensors."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return save_atomic({"molgnn": make_header("encoder", encoder, pretraining=pretraining), "state_dict": state},
                       path)


def load_encoder(path: str | Path, expect_spec: FeaturizerSpec | None = None) -> nn.Module:
    """Load an encoder from a molgnn ``encoder.pt``, a model/bundle file or a Lightning ``.ckpt``.

    ``expect_spec``: when given, a different featurizer spec is an error listing every differing field.
    """
    blob = safe_load(path)
    header = read_header(blob, path)
    spec = FeaturizerSpec.from_dict(header["spec"])
    if expect_spec is not None and spec != expect_spec:
        diff = "; ".join(expect_spec.diff(spec)[:10])
        raise CheckpointError(f"{path}: featurizer spec differs from the run's: {diff}")
    encoder = build_encoder(header, path)
    state = blob["state_dict"]
    if header["kind"] != "encoder":
        state = sub_state(state, "encoder")
    load_state_strict(encoder, state, path, "encoder")
    encoder.pretraining = header.get("pretraining")
    return encoder
