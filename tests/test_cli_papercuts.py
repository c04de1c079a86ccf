"""Papercuts a new user hit (issue 17): logger=none, trainer.max_steps without '+', one checkpoint restore at
the end of a run, thread defaults set before torch loads."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ESOL_CSV

TINY = ["encoder.hidden_dim=32", "encoder.num_layers=2", "head.hidden_dim=16", "~callbacks.rich_progress_bar"]


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.slow
def test_train_with_logger_none_and_max_steps_restores_the_best_checkpoint_once(compose, tmp_path):
    from molgnn.cli.train import train

    # logger=none keeps the default callbacks (lr_monitor included: it is dropped, not an error);
    # trainer.max_steps is a plain key (no '+'); 96 train rows / batch 16 = 6 steps per epoch
    cfg = compose(
        "train",
        [
            *ESOL_CSV,
            "data.batch_size=16",
            "logger=none",
            "trainer.max_epochs=50",
            "trainer.max_steps=30",
            *TINY,
        ],
    )
    assert "lr_monitor" in cfg.callbacks
    handler, lightning_log = _Count(), logging.getLogger("lightning.pytorch")
    lightning_log.addHandler(handler)
    old_level = lightning_log.level
    lightning_log.setLevel(logging.INFO)
    try:
        metrics = train(cfg, tmp_path / "run")
    finally:
        lightning_log.removeHandler(handler)
        lightning_log.setLevel(old_level)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 30 and metrics["epochs"] < 50  # max_steps stopped it
    assert not (tmp_path / "run" / "logs").exists()
    assert sum("Restoring states from the checkpoint" in m for m in handler.messages) == 1

    # the reported metrics are the best checkpoint's: val/rmse is ModelCheckpoint's best score, and the
    # test predictions (written after test) reproduce test/rmse, so test and predict saw the same weights
    best_score = next(
        v["best_model_score"] for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")
    )
    assert metrics["val/rmse"] == pytest.approx(float(best_score), rel=1e-5)
    preds = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    rmse = float(np.sqrt(np.mean((preds["logS"] - preds["logS_pred"]) ** 2)))
    assert metrics["test/rmse"] == pytest.approx(rmse, rel=1e-4)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/rmse"] == metrics["test/rmse"]


@pytest.mark.slow
def test_train_max_steps_shorter_than_one_epoch_still_reports(compose, tmp_path):
    """max_steps can stop a run before its first validation: early stopping must not fail on the missing
    val metric; the run tests the weights it has."""
    from molgnn.cli.train import train

    cfg = compose("train", [*ESOL_CSV, "data.batch_size=16", "logger=none", "trainer.max_steps=3", *TINY])
    metrics = train(cfg, tmp_path / "run")
    assert np.isfinite(metrics["test/rmse"])
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_trainer_arguments_override_without_plus(compose):
    from hydra.utils import instantiate

    over = [
        "trainer.max_steps=20",
        "trainer.min_epochs=1",
        "trainer.val_check_interval=0.5",
        "trainer.check_val_every_n_epoch=2",
        "trainer.accumulate_grad_batches=2",
        "trainer.gradient_clip_val=1.0",
        "trainer.precision=32",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=0.5",
        "trainer.limit_test_batches=2",
        "trainer.limit_predict_batches=2",
    ]
    for name in ("train", "pretrain"):
        cfg = compose(name, over)
        trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        assert trainer.max_steps == 20 and trainer.accumulate_grad_batches == 2
        assert trainer.gradient_clip_val == 1.0 and trainer.limit_train_batches == 3
    # the added keys are Lightning's own defaults: composing them in changes nothing
    plain = instantiate(compose("train").trainer, logger=False, enable_progress_bar=False)
    assert (
        plain.max_steps,
        plain.check_val_every_n_epoch,
        plain.limit_val_batches,
        plain.precision,
        plain.num_sanity_val_steps,
        plain.gradient_clip_val,
    ) == (-1, 1, 1.0, "32-true", 2, None)


@pytest.mark.slow
def test_pretrain_accepts_max_steps_and_logger_none_with_lr_monitor(compose, fixtures, tmp_path):
    from molgnn.cli.pretrain import pretrain

    cfg = compose(
        "pretrain",
        [
            f"data.path={fixtures / 'pretrain_200.csv'}",
            "pretrain=attr_mask",
            "encoder.hidden_dim=32",
            "data.batch_size=32",
            "data.featurize_workers=0",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "trainer.max_steps=4",
            "+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor",
        ],
    )
    header = pretrain(cfg, tmp_path / "pre")
    assert header["steps"] == 4


def _env_after_import(env_extra: dict[str, str | None]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",)}
    env.update({k: v for k, v in env_extra.items() if v is not None})
    code = (
        "import molgnn.cli.train, os, torch; "
        "print(os.environ.get('OMP_WAIT_POLICY')); print(os.environ.get('OMP_NUM_THREADS'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_entry_points_set_passive_omp_wait_policy_and_keep_user_settings():
    assert _env_after_import({})[0] == "PASSIVE"
    assert _env_after_import({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}) == ["ACTIVE", "3"]


def test_omp_wait_policy_is_set_before_torch_is_imported():
    """The policy only takes effect if it is in the environment when torch (its OpenMP runtime) loads."""
    code = (
        "import sys, os, molgnn.cli; assert 'torch' not in sys.modules, 'torch imported by molgnn.cli'; "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "PASSIVE", proc.stderr[-2000:]


def test_monitor_reaches_the_task_scheduler(compose):
    from hydra.utils import instantiate

    from molgnn.data.scaler import TargetScaler

    for monitor in ("val/rmse", "val/mae"):
        cfg = compose("train", [f"monitor={monitor}"])
        encoder = instantiate(cfg.encoder)
        head = instantiate(cfg.head)(in_dim=encoder.out_dim, out_dim=1)
        task = instantiate(cfg.task)(
            encoder=encoder, head=head, scaler=TargetScaler.identity(1), target_names=["y"]
        )
        assert task.configure_optimizers()["lr_scheduler"]["monitor"] == monitor
        assert cfg.callbacks.model_checkpoint.monitor == cfg.callbacks.early_stopping.monitor == monitor
