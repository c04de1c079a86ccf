"""TimeBudget: a run given minutes ends inside them, with max_steps and the cosine schedule set to match."""

import time

import lightning as L
import pytest
import torch
from torch import nn

from molgnn.tasks.budget import TimeBudget
from molgnn.tasks.pretrain.task import WarmupCosine

STEP_SECONDS = 0.01


class SlowRegression(L.LightningModule):
    """A linear model whose every step takes at least STEP_SECONDS (so the step rate is known)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        time.sleep(STEP_SECONDS)
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = WarmupCosine(opt, total_steps=self.trainer.estimated_stepping_batches, final_ratio=0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(budget: TimeBudget, max_epochs: int = 1000) -> tuple[L.Trainer, SlowRegression, float]:
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model = SlowRegression()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=[budget],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    start = time.time()
    trainer.fit(model, loader)
    return trainer, model, time.time() - start


@pytest.mark.parametrize("max_epochs", [1000, -1], ids=["many-epochs", "unbounded"])
def test_time_budget_sets_steps_and_anneals_the_schedule(max_epochs):
    # 6 s: enough steps after the probe (hundreds, even on a busy machine) that the cosine starts near its peak
    budget = TimeBudget(minutes=6.0 / 60, probe_steps=20, margin=0.0)
    trainer, model, seconds = _fit(budget, max_epochs)
    assert budget.plan, "no plan was made"
    assert trainer.global_step == budget.plan["max_steps"] < 1000 * 8  # stopped by the budget, not max_epochs
    # the plan fits the budget: the steps left after warm-up (10) + probe (20), at the measured rate (each step
    # sleeps STEP_SECONDS), fill at most the time that was left; checked on the plan, not on a busy clock
    assert budget.plan["s_per_step"] >= STEP_SECONDS
    assert (budget.plan["max_steps"] - 30) * budget.plan["s_per_step"] <= budget.plan["seconds_left"] <= 6.0
    assert (
        seconds < 6.0 + 30
    )  # a run that ignored the budget would take >= 8000 x 0.01 s = 80 s (or never end)
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == budget.plan["max_steps"]
    assert model.lrs[-1] < 0.1 * 0.05  # the cosine reached (close to) its floor, 0.01 x lr
    assert max(model.lrs) > 0.1 * 0.9  # ... after passing its peak


def test_time_budget_deadline_in_the_past_stops_after_one_step():
    budget = TimeBudget(deadline=time.time() - 1, probe_steps=5)
    trainer, _, _ = _fit(budget)
    assert trainer.global_step == budget.plan["max_steps"] == 1  # no warm-up or probe past the deadline


def test_max_epochs_that_come_first_still_get_an_annealed_schedule():
    budget = TimeBudget(minutes=10.0, probe_steps=20)  # far more time than 8 epochs of 8 steps need
    trainer, model, _ = _fit(budget, max_epochs=8)
    assert budget.plan["budget_steps"] > budget.plan["max_steps"] == trainer.global_step == 8 * 8
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 64
    assert model.lrs[-1] < 0.1 * 0.05  # annealed by the last step of the last epoch


def test_a_probe_that_outlasts_the_budget_still_stops_at_the_deadline():
    budget = TimeBudget(minutes=0.5 / 60, probe_steps=10_000)  # the probe alone would take 100 s
    trainer, _, seconds = _fit(budget)
    assert budget.plan["s_per_step"] is None and trainer.global_step == budget.plan["max_steps"]
    assert seconds < 0.5 + 10 and trainer.global_step < 10_000
