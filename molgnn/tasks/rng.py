"""Random-number state in checkpoints, so a resumed run continues the uninterrupted run exactly.

Lightning saves weights, optimizer, scheduler and loop counters, but not the global RNGs. A run resumed
from ``last.ckpt`` then shuffles its next epoch and draws its dropout masks from the state left by
``seed_everything`` + model construction, not from where the interrupted run stood, and ends on different
metrics. ``RngStateCallback`` stores the Python, NumPy and torch (CPU and CUDA) generator states with each
checkpoint and puts them back when ``trainer.fit(ckpt_path=...)`` restores it.

The state is primitives and tensors only (loads with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def capture_rng_state() -> dict:
    """The global generators' states as primitives and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back what ``capture_rng_state`` returned (parts that are absent are left alone)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class RngStateCallback(L.Callback):
    """Saves the RNG states in every checkpoint (``ckpt["callbacks"]["RngStateCallback"]``) and restores them
    on resume, so shuffling and dropout after a resume match an uninterrupted run with the same seed."""

    def state_dict(self) -> dict:
        return capture_rng_state()

    def load_state_dict(self, state_dict: dict) -> None:
        restore_rng_state(state_dict)
        log.info("restored RNG states from the checkpoint")
