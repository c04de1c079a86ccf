"""Wall-clock timing of training epochs (train + validation), reported in metrics.json."""

from __future__ import annotations

import statistics
import time

from lightning.pytorch.callbacks import Callback


class EpochTimer(Callback):
    """Records seconds per epoch (train loop + validation) in ``epoch_seconds``."""

    def __init__(self):
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):  # runs after the epoch's validation loop
        self.epoch_seconds.append(time.perf_counter() - self._start)

    def summary(self) -> dict[str, float]:
        if not self.epoch_seconds:
            return {}
        return {
            "time/epoch_median_s": statistics.median(self.epoch_seconds),
            "time/fit_s": sum(self.epoch_seconds),
        }
