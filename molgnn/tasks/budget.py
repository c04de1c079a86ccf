"""TimeBudget: fit a training run to a wall-clock budget with a fully annealed learning-rate schedule.

Lightning's ``max_time`` stops a run mid-schedule (the learning rate never decays). This callback instead
times the first ``probe_steps`` optimizer steps, then sets ``max_steps`` to what fits in the time left and
stretches (or shrinks) every step scheduler that has a ``total_steps`` attribute (``WarmupCosine``) to
that length, so a GPU run of "about 12 minutes" ends with a decayed learning rate whatever the hardware.
"""

from __future__ import annotations

import logging
import math
import time

from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class TimeBudget(Callback):
    """Stop training after ``minutes`` of training (or at the unix time ``deadline``, whichever is earlier).

    ``probe_steps``: steps timed before the plan is made; ``margin``: fraction of the time left kept for
    validation, checkpointing and the final export. The plan (steps, seconds per step) is logged and kept
    in ``plan``. The trainer's own ``max_epochs``/``max_steps`` still stop a run earlier when they come first,
    and then the schedule is fitted to them instead (set ``max_epochs`` high to let the budget decide).
    Steps so slow that the probe itself outlasts the budget stop at the deadline (no plan is made).
    """

    def __init__(
        self,
        minutes: float | None = None,
        deadline: float | None = None,
        probe_steps: int = 200,
        margin: float = 0.05,
    ):
        if minutes is None and deadline is None:
            raise ValueError("TimeBudget needs minutes= or deadline=")
        self.minutes, self.deadline, self.probe_steps, self.margin = minutes, deadline, probe_steps, margin
        self.plan: dict = {}
        self._t0 = self._t_probe = 0.0
        self._step0 = 0

    def _end_time(self) -> float:
        ends = [self._t0 + 60.0 * self.minutes] if self.minutes is not None else []
        if self.deadline is not None:
            ends.append(float(self.deadline))
        return min(ends)

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._step0 = time.time(), trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (
            trainer.global_step == self._step0 + 10 and not self._t_probe
        ):  # skip warm-up (compilation, workers)
            self._t_probe, self._step0 = time.time(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.time()
        if not self.plan and now >= self._end_time():  # steps so slow that the probe outlasts the budget
            trainer.should_stop = True
            self.plan = {"s_per_step": None, "max_steps": trainer.global_step, "seconds_left": 0.0}
            log.warning("time budget: spent before the %d-step probe ended; stopping", self.probe_steps)
            return
        if self.plan or not self._t_probe or trainer.global_step < self._step0 + self.probe_steps:
            return
        s_per_step = (now - self._t_probe) / (trainer.global_step - self._step0)
        left = max(0.0, (self._end_time() - now) * (1 - self.margin))
        fits = trainer.global_step + int(left / s_per_step)
        cap = trainer.estimated_stepping_batches  # max_epochs / max_steps still cap the run (inf: no cap)
        total = min(fits, int(cap)) if math.isfinite(cap) else fits
        trainer.fit_loop.epoch_loop.max_steps = total
        for config in trainer.lr_scheduler_configs:
            if hasattr(config.scheduler, "total_steps"):
                config.scheduler.total_steps = max(1, total)
        self.plan = {"s_per_step": s_per_step, "max_steps": total, "seconds_left": left, "budget_steps": fits}
        log.info("time budget: %.4f s/step, %d steps in total (%.1f min left)", s_per_step, total, left / 60)
