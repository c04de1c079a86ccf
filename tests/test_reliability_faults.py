"""Faults: a training process killed mid-epoch resumes from last.ckpt and ends on exactly the metrics of an
uninterrupted run; the same seed gives the same metrics to the last digit; outputs are written atomically."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from molgnn.checkpoint import save_atomic
from molgnn.cli.report import write_json
from molgnn.cli.train import train
from molgnn.tasks.rng import RngStateCallback, capture_rng_state, restore_rng_state
from conftest import ESOL_CSV_QUIET

TESTS = Path(__file__).parent
# 96 train rows / batch 16 = 6 steps per epoch; 3 epochs
RUN = [
    *ESOL_CSV_QUIET,
    "data.batch_size=16",
    "trainer.max_epochs=3",
    "encoder.hidden_dim=32",
    "encoder.num_layers=2",
    "+trainer.enable_progress_bar=false",
]


class KillAfterSteps(L.Callback):
    """SIGKILL this process after ``steps`` optimizer steps: no exception handler, no cleanup runs."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_batch_end(self, trainer, *args, **kwargs):
        if trainer.global_step >= self.steps:
            os.kill(os.getpid(), signal.SIGKILL)


def test_rng_state_round_trip_is_weights_only_safe(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state = capture_rng_state()
    torch.save({"callbacks": {"RngStateCallback": RngStateCallback().state_dict()}}, tmp_path / "s.pt")
    first = (torch.rand(3), np.random.rand(3), random.random())
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)["callbacks"]["RngStateCallback"]
    RngStateCallback().load_state_dict(loaded)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), first[0])


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(compose, tmp_path):
    reference = train(compose("train", RUN), tmp_path / "reference")

    # the real CLI, SIGKILLed at step 15 (mid-epoch 2); last.ckpt is the end of epoch 1
    killed = tmp_path / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "molgnn.cli.train",
            *RUN,
            f"hydra.run.dir={killed}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "+callbacks.kill._target_=test_reliability_faults.KillAfterSteps",
            "+callbacks.kill.steps=15",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (killed / "metrics.json").exists()
    last = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (1, 12) and "RngStateCallback" in last["callbacks"]

    resumed = train(
        compose("train", RUN + [f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}"]), tmp_path / "resumed"
    )
    for key in ("val/rmse", "test/rmse", "test/mae", "test/r2"):
        assert resumed[key] == pytest.approx(reference[key], rel=1e-6, abs=1e-7), key
    assert resumed["epochs"] == reference["epochs"] == 3


@pytest.mark.slow
def test_same_seed_same_metrics_to_the_last_digit(compose, tmp_path):
    runs = [train(compose("train", RUN + ["trainer.max_epochs=2"]), tmp_path / name) for name in ("a", "b")]
    keys = [k for k in runs[0] if k.startswith(("val/", "test/"))]
    assert keys and all(runs[0][k] == runs[1][k] for k in keys), {k: (runs[0][k], runs[1][k]) for k in keys}
    preds = [(tmp_path / name / "test_predictions.csv").read_bytes() for name in ("a", "b")]
    assert preds[0] == preds[1]


def test_write_json_failure_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json({"a": 1.0}, path)
    with pytest.raises(TypeError):
        write_json({"a": object()}, path)  # fails while serializing: the old file must survive whole
    assert json.loads(path.read_text()) == {"a": 1.0}


def test_save_atomic_failure_keeps_the_previous_file(tmp_path):
    path = tmp_path / "encoder.pt"
    save_atomic({"w": torch.ones(2)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_atomic({"w": lambda: 0}, path)  # cannot be pickled: fails mid-write
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
