"""Files written whole or not at all: ``atomic_write`` (temp name in the same folder, then rename) and the
one load-or-compute cache, ``cached``, on top of it; ``file_digest`` names a file by its bytes for cache keys."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` for a hidden temp name beside ``path`` (same folder, so the rename is atomic),
    then rename it to ``path``: a reader sees the old file or the complete new one, never a partial one.
    If ``write`` raises, the temp file is removed and ``path`` is untouched. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_torch(value: Any, path: Path) -> None:
    torch.save(value, path)


def load_torch(path: str | Path, stand_ins: Sequence[tuple[object, str]] = ()) -> Any:
    """The package's one ``torch.load``: ``weights_only=True`` (tensors and primitives; a pickle naming any
    other class or function is refused before it runs), onto the CPU. ``stand_ins``: (inert object,
    "module.name") pairs a foreign file may name (``molgnn.chemprop_file``). Errors are torch's; weights
    files go through ``molgnn.weights.read_weights``, which turns them into one line naming the file."""
    with torch.serialization.safe_globals(list(stand_ins)):
        return torch.load(path, map_location="cpu", weights_only=True)


def cached(
    path: str | Path | None,
    compute: Callable[[], Any],
    save: Callable[[Any, Path], Any] = save_torch,
    load: Callable[[Path], Any] = load_torch,
) -> Any:
    """``load(path)`` when ``path`` exists, else ``compute()`` written with ``save(value, tmp)`` through
    ``atomic_write``. ``path=None``: no cache, just ``compute()``. A file ``load`` cannot read (or rejects by
    raising) is recomputed and replaced, never trusted. Default format: a ``weights_only`` torch file."""
    if path is None:
        return compute()
    path = Path(path)
    if path.exists():
        try:
            value = load(path)
            log.info("cache hit: %s", path)
            return value
        except Exception as exc:  # a damaged or stale cache is rebuilt
            log.warning("ignoring unreadable cache %s: %s", path, exc)
    value = compute()
    atomic_write(path, lambda tmp: save(value, tmp))
    return value


def file_digest(path: str | Path, length: int = 20) -> str:
    """First ``length`` hex digits of the sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
