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
import os
import pickle
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


def safe_load(path: str | Path, stand_ins: list[tuple[object, str]] = ()) -> dict:
    """``torch.load(weights_only=True)`` with one clear error for every way a file can be unusable.

    A pickle that names any class or function outside torch's tensor allow-list is refused before anything
    in it runs; truncated, empty, random or foreign files are a ``CheckpointError``, never another exception.
    ``stand_ins``: extra (inert object, "module.name") pairs the file may name (foreign files such as
    Chemprop's, ``molgnn.chemprop_file``); the name resolves to the stand-in, never to the real object.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(list(stand_ins)):
            blob = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _torch_detail(exc)
        if "global" in detail.lower():
            hint = ("; for a Chemprop model file use encoder=chemprop encoder.path=... (read without its code)"
                    if not stand_ins and ("chemprop." in detail or "AttributeDict" in detail) else "")
            raise CheckpointError(f"{p}: refused: the file would import code ({detail}); molgnn loads tensors and "
                                  f"primitives only and never executes code from a checkpoint{hint}") from None
        raise CheckpointError(f"{p}: not a readable checkpoint (corrupt or not a torch file): {detail}") from None
    except Exception as exc:  # truncated zip, random bytes, legacy-format garbage: all the user's file, not a bug
        raise CheckpointError(f"{p}: not a readable checkpoint (truncated or not a torch file): "
                              f"{_torch_detail(exc)}") from None
    if not isinstance(blob, dict):
        raise CheckpointError(f"{p}: not a checkpoint (top level is {type(blob).__name__}, expected a dict)")
    return blob


def _torch_detail(exc: BaseException) -> str:
    """The informative part of a torch.load error: the refused import (``GLOBAL module.name``) or the first
    line that is not torch's weights_only preamble (which suggests the unsafe load; never repeat that)."""
    import re

    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"unsupported GLOBAL {found.group(1)}"
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6",
            "(1)", "(2)")
    lines = [ln.strip().removeprefix("WeightsUnpickler error:").strip() for ln in text.splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(skip)]
    line = (useful or [type(exc).__name__])[0]
    return line if len(line) <= 160 else line[:157] + "..."


def read_header(blob: dict, path: str | Path) -> dict:
    """The molgnn header of a loaded checkpoint, checked for format version and structure (kind, spec,
    encoder family/args, heads, state_dict), so later code never meets a KeyError or TypeError."""
    header = blob.get("molgnn")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: no molgnn header; for a plain state dict use encoder=state_dict with "
                              "the encoder arguments in config")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: malformed molgnn header: format_version is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this molgnn "
                              f"supports ({FORMAT_VERSION}); upgrade molgnn")
    problem = _header_problem(header, blob)
    if problem:
        raise CheckpointError(f"{path}: malformed molgnn header: {problem}")
    return header


def _header_problem(header: dict, blob: dict) -> str | None:
    """What is structurally wrong with a header (None when nothing is)."""
    import inspect

    if not isinstance(header.get("kind"), str):
        return f"kind is {header.get('kind')!r}"
    try:
        FeaturizerSpec.from_dict(header["spec"])
    except Exception as exc:
        return f"spec cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
    enc = header.get("encoder")
    if not isinstance(enc, dict) or not isinstance(enc.get("family"), str) or not isinstance(enc.get("args"), dict):
        return "encoder must be {'family': str, 'args': dict, ...}"
    if enc["family"] in ENCODER_FAMILIES:
        params = inspect.signature(ENCODER_FAMILIES[enc["family"]]).parameters
        if not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
            extra = sorted(set(map(str, enc["args"])) - set(params))
            if extra:
                return f"encoder family {enc['family']!r} takes no argument(s) {extra}"
    heads = header.get("heads", [])
    if not isinstance(heads, list) or not all(
            isinstance(h, dict) and isinstance(h.get("family"), str) and isinstance(h.get("args"), dict)
            for h in heads):
        return "heads must be a list of {'family': str, 'args': dict, ...}"
    if not isinstance(blob.get("state_dict"), dict):
        return "no state_dict (the tensors) next to the header"
    return None


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
        raise CheckpointError(f"{path}: encoder.dropout: the {header['encoder']['family']} encoder in this file "
                              "has no dropout argument")
    if not 0.0 <= float(dropout) < 1.0:
        raise CheckpointError(f"encoder.dropout must be in [0, 1), got {dropout}")
    encoder = {**header["encoder"], "args": {**args, "dropout": float(dropout)}}
    return {**header, "encoder": encoder}


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
    try:
        torch.save(obj, tmp)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write; after the rename it is already gone
    return p


def export_encoder(encoder: nn.Module, path: str | Path, pretraining: dict | None = None) -> Path:
    """Write ``encoder.pt``: header + encoder tensors."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return save_atomic({"molgnn": make_header("encoder", encoder, pretraining=pretraining), "state_dict": state},
                       path)


def load_encoder(path: str | Path, expect_spec: FeaturizerSpec | None = None,
                 dropout: float | None = None) -> nn.Module:
    """Load an encoder from a molgnn ``encoder.pt``, a model/bundle file or a Lightning ``.ckpt``.

    ``expect_spec``: when given, a different featurizer spec is an error listing every differing field.
    ``dropout``: when given, replaces the dropout rate the encoder was saved with (fine-tuning with dropout
    after pretraining without it); it changes no weight.
    """
    blob = safe_load(path)
    header = read_header(blob, path)
    if dropout is not None:
        header = with_dropout(header, dropout, path)
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


def attach_calibration(path: str | Path, record: dict, domain: nn.Module) -> Path:
    """Add a head's calibration record (``heads[0]["calibration"]``) and the domain index tensors
    (``state_dict["domain.*"]``) to a model checkpoint, rewritten atomically."""
    blob = safe_load(path)
    header = read_header(blob, path)
    header["heads"][0]["calibration"] = record
    blob["state_dict"].update({f"domain.{k}": v.detach().cpu() for k, v in domain.state_dict().items()})
    return save_atomic(blob, path)


def write_ensemble(paths: list[str | Path], out: str | Path) -> Path:
    """One file holding several trained models (kind "ensemble"): header = the first member's header with
    ``kind`` "ensemble" and ``members`` [every member's header]; tensors ``members.<i>.<key>``. Lightning's
    optimizer and loop states are left out."""
    headers, state = [], {}
    for i, path in enumerate(paths):
        blob = safe_load(path)
        header = read_header(blob, path)
        if header["kind"] != "model":
            raise CheckpointError(f"{path}: a {header['kind']} file; an ensemble is made of molgnn-train checkpoints")
        headers.append(header)
        state.update({f"members.{i}.{k}": v for k, v in blob["state_dict"].items()})
    return save_atomic({"molgnn": {**headers[0], "kind": "ensemble", "members": headers}, "state_dict": state}, out)
