"""The one door for weights files: ``read_weights(path) -> WeightsFile`` opens any file molgnn accepts and
says what it is; every loader (``checkpoint``, ``predictor``, ``transfer``, ``chemprop_file``) starts here and
then dispatches on ``kind``.

Kinds:

- a molgnn file (``{"molgnn": header, "state_dict": tensors}``, plus Lightning's keys in a ``.ckpt``): the
  header's kind, ``encoder`` (``encoder.pt``), ``pretrain`` (molgnn-pretrain checkpoint), ``model``
  (molgnn-train checkpoint), ``bundle`` (molgnn-bundle) or ``ensemble``; the header is checked here
  (``read_header``: format version and structure).
- ``chemprop``: a Chemprop 2.x model or message-passing file (``chemprop_pickle.is_chemprop_file``), read
  with the inert stand-ins of ``chemprop_pickle.STAND_INS`` for the classes it names.
- ``state_dict``: anything else that holds a dict, a plain PyTorch state dict (or one under ``state_dict``
  in a foreign Lightning checkpoint); ``transfer.plain_state_dict`` checks that it is tensors only.

The file is read exactly once, here, with ``torch.load(weights_only=True)`` (``safe_load``): a pickle naming
any class or function outside torch's tensor allow-list (and, for Chemprop files, the stand-ins) is refused
before anything in it runs. Every unusable file is one ``CheckpointError`` line naming the file.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path


from molgnn.chemprop_pickle import STAND_INS, is_chemprop_file
from molgnn.errors import CheckpointError
from molgnn.storage import load_torch
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn import ENCODER_FAMILIES

FORMAT_VERSION = 1
MOLGNN_KINDS = ("encoder", "pretrain", "model", "bundle", "ensemble")
_FOREIGN = {"chemprop": "Chemprop model", "state_dict": "plain state dict"}
CHEMPROP_HINT = "for a Chemprop model file use encoder=chemprop encoder.path=... (read without its code)"


@dataclass(frozen=True)
class WeightsFile:
    """One weights file as read. ``kind``: one of ``MOLGNN_KINDS``, "chemprop" or "state_dict"; ``header``:
    the checked molgnn header (None for a foreign file); ``state``: the tensors (a molgnn or Chemprop file's
    ``state_dict``; for a plain state dict the mapping that should hold them); ``blob``: the whole unpickled
    dict (Lightning's keys, Chemprop's ``hyper_parameters`` and ``output_columns``). ``header`` and ``state``
    are the very dicts inside ``blob``, so an edit to them is an edit to ``blob``."""

    path: str | Path
    kind: str
    header: dict | None
    state: dict
    blob: dict

    def molgnn_header(self) -> dict:
        """The molgnn header; for a foreign file an error saying which loader reads it instead."""
        if self.header is not None:
            return self.header
        if self.kind == "chemprop":
            raise CheckpointError(
                f"{self.path}: a Chemprop model file, not a molgnn checkpoint; {CHEMPROP_HINT}"
            )
        raise CheckpointError(
            f"{self.path}: no molgnn header; for a plain state dict use encoder=state_dict with "
            "the encoder arguments in config"
        )

    def require(self, kinds: tuple[str, ...], use: str) -> dict:
        """The molgnn header of a file of one of ``kinds``; any other file is "<path>: a <kind> file; <use>"."""
        if self.kind not in kinds:
            raise CheckpointError(f"{self.path}: a {_FOREIGN.get(self.kind, self.kind)} file; {use}")
        return self.molgnn_header()


def read_weights(path: str | Path) -> WeightsFile:
    """Open any weights file molgnn accepts and say what it is (see the module docstring for the kinds)."""
    if is_chemprop_file(path):
        blob = safe_load(path, STAND_INS)
        if not isinstance(blob.get("hyper_parameters"), dict) or not isinstance(blob.get("state_dict"), dict):
            raise CheckpointError(f"{path}: not a Chemprop model file (no hyper_parameters / state_dict)")
        return WeightsFile(path, "chemprop", None, blob["state_dict"], blob)
    blob = safe_load(path)
    if "molgnn" in blob:
        header = read_header(blob, path)
        return WeightsFile(path, header["kind"], header, blob["state_dict"], blob)
    state = blob["state_dict"] if isinstance(blob.get("state_dict"), dict) else blob
    return WeightsFile(path, "state_dict", None, state, blob)


def as_weights(source: str | Path | WeightsFile) -> WeightsFile:
    """A file already read (passed through) or a path (read now): loaders accept either, so a caller that
    looked at a file's kind first (``molgnn.encoders.make_encoder``) does not read it twice."""
    return source if isinstance(source, WeightsFile) else read_weights(source)


def safe_load(path: str | Path, stand_ins: list[tuple[object, str]] = ()) -> dict:
    """``torch.load(weights_only=True)`` with one clear error for every way a file can be unusable.

    A pickle that names any class or function outside torch's tensor allow-list is refused before anything
    in it runs; truncated, empty, random or foreign files are a ``CheckpointError``, never another exception.
    ``stand_ins``: extra (inert object, "module.name") pairs the file may name (foreign files such as
    Chemprop's, ``molgnn.chemprop_file``); the name resolves to the stand-in, never to the real object.
    The raw reader under ``read_weights``; loaders call ``read_weights``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        blob = load_torch(p, stand_ins)
    except pickle.UnpicklingError as exc:
        detail = _torch_detail(exc)
        if "global" in detail.lower():
            hint = (
                f"; {CHEMPROP_HINT}"
                if not stand_ins and ("chemprop." in detail or "AttributeDict" in detail)
                else ""
            )
            raise CheckpointError(
                f"{p}: refused: the file would import code ({detail}); molgnn loads tensors and "
                f"primitives only and never executes code from a checkpoint{hint}"
            ) from None
        raise CheckpointError(
            f"{p}: not a readable checkpoint (corrupt or not a torch file): {detail}"
        ) from None
    except (
        Exception
    ) as exc:  # truncated zip, random bytes, legacy-format garbage: all the user's file, not a bug
        raise CheckpointError(
            f"{p}: not a readable checkpoint (truncated or not a torch file): {_torch_detail(exc)}"
        ) from None
    if not isinstance(blob, dict):
        raise CheckpointError(f"{p}: not a checkpoint (top level is {type(blob).__name__}, expected a dict)")
    return blob


def _torch_detail(exc: BaseException) -> str:
    """The informative part of a torch.load error: the refused import (``GLOBAL module.name``) or the first
    line that is not torch's weights_only preamble (which suggests the unsafe load; never repeat that)."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"unsupported GLOBAL {found.group(1)}"
    skip = (
        "Weights only load failed",
        "Please file an issue",
        "Check the documentation",
        "In PyTorch 2.6",
        "(1)",
        "(2)",
    )
    lines = [ln.strip().removeprefix("WeightsUnpickler error:").strip() for ln in text.splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(skip)]
    line = (useful or [type(exc).__name__])[0]
    return line if len(line) <= 160 else line[:157] + "..."


def read_header(blob: dict, path: str | Path) -> dict:
    """The molgnn header of a loaded checkpoint, checked for format version and structure (kind, spec,
    encoder family/args, heads, state_dict), so later code never meets a KeyError or TypeError."""
    header = blob.get("molgnn")
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{path}: no molgnn header; for a plain state dict use encoder=state_dict with "
            "the encoder arguments in config"
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{path}: malformed molgnn header: format_version is {version!r}, not an integer"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this molgnn "
            f"supports ({FORMAT_VERSION}); upgrade molgnn"
        )
    problem = _header_problem(header, blob)
    if problem:
        raise CheckpointError(f"{path}: malformed molgnn header: {problem}")
    return header


def _header_problem(header: dict, blob: dict) -> str | None:
    """What is structurally wrong with a header (None when nothing is)."""
    import inspect

    if header.get("kind") not in MOLGNN_KINDS:
        return f"kind is {header.get('kind')!r} (known: {', '.join(MOLGNN_KINDS)})"
    try:
        FeaturizerSpec.from_dict(header["spec"])
    except Exception as exc:
        return f"spec cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
    enc = header.get("encoder")
    if (
        not isinstance(enc, dict)
        or not isinstance(enc.get("family"), str)
        or not isinstance(enc.get("args"), dict)
    ):
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
        for h in heads
    ):
        return "heads must be a list of {'family': str, 'args': dict, ...}"
    if not isinstance(blob.get("state_dict"), dict):
        return "no state_dict (the tensors) next to the header"
    return None
