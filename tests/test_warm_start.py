"""init_from: a run starts from a trained model's encoder and head (LP-FT), and a mismatched file is refused."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate

from molgnn.checkpoint import export_encoder, load_encoder, sub_state
from molgnn.errors import CheckpointError
from molgnn.warm_start import warm_start
from molgnn.weights import read_weights
from tests.conftest import TINY_ESOL

FROZEN = ["task.freeze_encoder=true", "task.precompute_embeddings=true", "trainer.max_epochs=3"]


@pytest.fixture(scope="module")
def frozen_run(train_tiny):
    """A tiny frozen-head run (phase 1 of LP-FT): its directory."""
    return train_tiny("frozen_head", *FROZEN)


def _built(compose, *overrides):
    """(encoder, head) as molgnn-train builds them for TINY_ESOL + overrides (one target: logS)."""
    cfg = compose("train", [*TINY_ESOL, *overrides])
    encoder = instantiate(cfg.encoder)
    return encoder, instantiate(cfg.head)(in_dim=encoder.out_dim, out_dim=1)


def test_warm_start_loads_every_encoder_and_head_tensor(frozen_run, compose):
    ckpt = frozen_run / "checkpoints" / "best.ckpt"
    state = read_weights(ckpt).state
    encoder, head = _built(compose)
    first = next(iter(head.state_dict()))
    assert not torch.equal(head.state_dict()[first], state[f"head.{first}"])  # random before
    warm_start(ckpt, encoder, head, ["logS"])
    for module, prefix in ((encoder, "encoder"), (head, "head")):
        saved = sub_state(state, prefix)
        assert saved.keys() == module.state_dict().keys()
        assert all(torch.equal(v, saved[k]) for k, v in module.state_dict().items())


def test_lpft_run_starts_where_the_frozen_run_ended(frozen_run, train_tiny):
    """With learning rate 0 the fine-tuning run cannot move: its validation metrics are the frozen run's."""
    ckpt = frozen_run / "checkpoints" / "best.ckpt"
    finetuned = train_tiny("lpft", f"+init_from={ckpt}", "task.optimizer.lr=0.0", "task.scheduler=null")
    before = json.loads((frozen_run / "metrics.json").read_text())
    after = json.loads((finetuned / "metrics.json").read_text())
    assert after["val/rmse"] == pytest.approx(before["val/rmse"], rel=1e-5)
    assert after["test/rmse"] == pytest.approx(before["test/rmse"], rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "targets", "message"),
    [
        (["head.hidden_dim=24"], ["logS"], r"head.hidden_dim: file 16 vs run 24"),
        (["encoder.num_layers=3"], ["logS"], r"encoder.num_layers: file 2 vs run 3"),
        ([], ["solubility"], r"targets: file \['logS'\] vs run \['solubility'\]"),
        (["graph=kekule"], ["logS"], r"featurizer spec differs"),
    ],
)
def test_a_model_that_differs_from_the_run_is_refused_by_name(
    frozen_run, compose, overrides, targets, message
):
    encoder, head = _built(compose, *overrides)
    with pytest.raises(CheckpointError, match=message) as err:
        warm_start(frozen_run / "checkpoints" / "best.ckpt", encoder, head, targets)
    assert "init_from=" in str(err.value) and "best.ckpt" in str(err.value)


def test_an_encoder_file_is_not_a_model_to_start_from(frozen_run, compose, tmp_path):
    path = export_encoder(load_encoder(frozen_run / "checkpoints" / "best.ckpt"), tmp_path / "encoder.pt")
    encoder, head = _built(compose)
    with pytest.raises(CheckpointError, match="init_from takes a molgnn-train checkpoint"):
        warm_start(path, encoder, head, ["logS"])


def test_the_lpft_preset_needs_init_from_and_builds_frozen_heads_architecture(compose):
    from omegaconf import OmegaConf

    step1, step2 = compose("train", ["experiment=frozen_head"]), compose("train", ["experiment=lpft"])
    assert OmegaConf.is_missing(step2, "init_from")
    assert step2.head == step1.head  # init_from requires the same head
    assert step2.task.optimizer.lr < step1.task.optimizer.lr and not step2.task.freeze_encoder
    given = compose("train", ["experiment=lpft", "init_from=run/checkpoints/best.ckpt"])
    assert given.init_from == "run/checkpoints/best.ckpt"
