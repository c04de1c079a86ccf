"""Transfer: frozen / partially frozen / gradually unfrozen / fine-tuned training on an imported encoder and
precomputed embeddings (the runs are the session fixture ``transfer_runs`` in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molgnn.checkpoint import load_encoder, safe_load
from molgnn.errors import MolgnnError
from molgnn.nn.hu2020 import Hu2020GCN
from molgnn.tasks.anchor import WeightAnchor
from molgnn.tasks.freezing import EncoderFreezer, make_freezer


def _encoder_state(run_dir: Path, which: str = "last") -> dict:
    state = safe_load(run_dir / "checkpoints" / f"{which}.ckpt")["state_dict"]
    return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}


def _changed(transfer_runs, name: str) -> set[str]:
    before = safe_load(transfer_runs["encoder"])["state_dict"]
    after = _encoder_state(transfer_runs["dir"] / name)
    assert set(before) == set(after)
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["frozen", "frozen_pre", "second", "preset"])
def test_frozen_training_leaves_every_encoder_tensor_bit_identical(transfer_runs, name):
    assert _changed(transfer_runs, name) == set()  # weights, batch-norm running stats and counters
    before = safe_load(transfer_runs["encoder"])["state_dict"]
    best = _encoder_state(transfer_runs["dir"] / name, "best")
    assert all(torch.equal(before[k], best[k]) for k in before)


@pytest.mark.slow
def test_precomputed_embeddings_train_the_same_head(transfer_runs):
    """Same seed, same batches, same frozen encoder: the head trained on precomputed embeddings matches."""
    a, b = transfer_runs["frozen"], transfer_runs["frozen_pre"]
    assert b["time/precompute_s"] > 0 and "time/precompute_s" not in a
    assert abs(a["val/rmse"] - b["val/rmse"]) < 1e-4 and abs(a["test/rmse"] - b["test/rmse"]) < 1e-4
    heads = [
        {
            k: v
            for k, v in safe_load(transfer_runs["dir"] / n / "checkpoints" / "last.ckpt")[
                "state_dict"
            ].items()
            if k.startswith("head.")
        }
        for n in ("frozen", "frozen_pre")
    ]
    assert all(torch.allclose(heads[0][k], heads[1][k], atol=1e-5) for k in heads[0])
    preds = [pd.read_csv(transfer_runs["dir"] / n / "test_predictions.csv") for n in ("frozen", "frozen_pre")]
    assert np.allclose(preds[0].logS_pred, preds[1].logS_pred, atol=1e-4)


@pytest.mark.slow
def test_frozen_head_preset_trains_a_dropout_head_on_precomputed_embeddings(transfer_runs):
    """experiment=frozen_head: encoder frozen (above), embeddings computed once, the preset's head dropout."""
    assert transfer_runs["preset"]["time/precompute_s"] > 0
    head = safe_load(transfer_runs["dir"] / "preset" / "checkpoints" / "last.ckpt")["molgnn"]["heads"][0][
        "args"
    ]
    assert head["dropout"] == 0.2 and head["hidden_dim"] == 16  # the preset's dropout; the command line wins


@pytest.mark.slow
def test_fine_tuning_changes_the_encoder(transfer_runs):
    changed = _changed(transfer_runs, "finetuned")
    assert {"convs.0.nn.0.weight", "convs.1.nn.0.weight", "norms.0.running_mean"} <= changed


def _distance_from_start(transfer_runs, name: str) -> float:
    before = safe_load(transfer_runs["encoder"])["state_dict"]
    after = _encoder_state(transfer_runs["dir"] / name)
    params = {k for k, _ in load_encoder(transfer_runs["encoder"]).named_parameters()}
    return sum(float((after[k] - before[k]).pow(2).sum()) for k in params) ** 0.5


@pytest.mark.slow
def test_l2sp_keeps_the_encoder_near_its_start(transfer_runs):
    """Same seed, data and epochs as plain fine-tuning: the L2-SP run moves the encoder much less, yet moves it."""
    plain, anchored = (
        _distance_from_start(transfer_runs, "finetuned"),
        _distance_from_start(transfer_runs, "l2sp"),
    )
    assert 0 < anchored < 0.5 * plain


def test_l2sp_penalty_counts_only_trainable_distance_from_start():
    encoder = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    anchor = WeightAnchor(encoder, strength=4.0)
    assert anchor.penalty(encoder).item() == 0.0
    with torch.no_grad():
        encoder[0].weight.add_(1.0)  # 6 entries, each 1 away
        encoder[1].bias.add_(2.0)  # 1 entry, 2 away
    assert anchor.penalty(encoder).item() == pytest.approx(0.5 * 4.0 * (6 + 4))
    encoder[1].requires_grad_(False)  # frozen parameters are not penalized
    assert anchor.penalty(encoder).item() == pytest.approx(0.5 * 4.0 * 6)
    assert "start_0" not in WeightAnchor(encoder, 1.0).state_dict()  # never written into checkpoints
    with pytest.raises(MolgnnError, match="task.l2sp"):
        WeightAnchor(encoder, -1.0)


@pytest.mark.slow
def test_freeze_layers_freezes_exactly_the_embeddings_and_first_layers(transfer_runs):
    before = safe_load(transfer_runs["encoder"])["state_dict"]
    frozen = {
        k for k in before if k.startswith(("atom_embedding.", "convs.0.", "bond_embeddings.0.", "norms.0."))
    }
    changed = _changed(transfer_runs, "layers1")
    assert not changed & frozen  # embeddings + layer 0 bit-identical, batch-norm statistics included
    params = {k for k, _ in load_encoder(transfer_runs["encoder"]).named_parameters()}
    assert params - frozen <= changed  # every other weight trained
    assert {"norms.1.running_mean", "convs.1.nn.1.running_var"} <= changed


@pytest.mark.slow
def test_gradual_unfreezing_trains_the_top_layer_first(transfer_runs):
    changed = _changed(transfer_runs, "gradual")  # epoch 0: head only; epoch 1: top layer (+ readout)
    assert any(k.startswith("convs.1.") for k in changed) and any(k.startswith("norms.1.") for k in changed)
    assert not any(
        k.startswith(("atom_embedding.", "convs.0.", "bond_embeddings.0.", "norms.0.")) for k in changed
    )


def test_unfreezing_schedule_top_down_and_eval_mode():
    encoder = Hu2020GCN(hidden_dim=8, num_layers=3)
    freezer = EncoderFreezer(encoder, freeze_layers=None, unfreeze_every=2)

    def trainable(epoch):
        freezer.apply(epoch, training=True)
        return {
            k.split(".")[0] + ("." + k.split(".")[1] if k.split(".")[1].isdigit() else "")
            for k, p in encoder.named_parameters()
            if p.requires_grad
        }

    assert trainable(0) == trainable(1) == set()
    assert not encoder.gnns[2].training and not encoder.batch_norms[0].training
    assert trainable(2) == {"gnns.2", "batch_norms.2"}
    assert encoder.batch_norms[2].training and not encoder.batch_norms[1].training
    assert trainable(4) == {"gnns.2", "batch_norms.2", "gnns.1", "batch_norms.1"}
    assert trainable(8) == {
        "gnns.2",
        "batch_norms.2",
        "gnns.1",
        "batch_norms.1",
        "gnns.0",
        "batch_norms.0",
        "x_embedding1",
        "x_embedding2",
    }
    assert len(freezer.optimizer_params()) == len(list(encoder.parameters()))
    fixed = EncoderFreezer(encoder, freeze_layers=2, unfreeze_every=None)
    assert {id(p) for p in fixed.optimizer_params()} == {
        id(p) for p in [*encoder.gnns[2].parameters(), *encoder.batch_norms[2].parameters()]
    }


def test_freezing_options_are_checked():
    encoder = Hu2020GCN(hidden_dim=8, num_layers=3)
    with pytest.raises(MolgnnError, match="needs task.freeze_encoder=true"):
        make_freezer(encoder, False, None, None, precompute_embeddings=True)
    with pytest.raises(MolgnnError, match="task.freeze_layers=4: the hu2020_gcn encoder has 3"):
        make_freezer(encoder, False, 4, None)
    with pytest.raises(MolgnnError, match="freezes the whole encoder"):
        make_freezer(encoder, True, 1, None)
    assert make_freezer(encoder, False, None, None) is None
