"""Chemprop 2.x import: Chemprop's own featurization, fingerprints and `chemprop predict` output reproduced
from its model files (references in tests/fixtures/chemprop, made with chemprop 2.3.1, see its README), the
files read without running their code, and training on an imported encoder.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ESOL_CSV_QUIET
from molgnn.chemprop_file import (
    is_chemprop_file,
    load_chemprop_encoder,
    load_chemprop_predictor,
    read_chemprop,
)
from molgnn.errors import CheckpointError
from molgnn.featurize.chemprop import chemprop_inputs, chemprop_spec, decode_float32, encode_float32
from molgnn.featurize.graph import smiles_to_arrays
from molgnn.predictor import load_models
from molgnn.transfer import embed_smiles

FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "chemprop"
SMILES = pd.read_csv(FIXTURE / "smiles.csv")["smiles"].tolist()
MODELS = {"model_v2_norm.pt": "preds_v2_norm.csv", "model_v1_mean_bn.pt": "preds_v1_mean_bn.csv"}


@pytest.mark.parametrize("mode", ["V2", "V1"])
def test_featurization_is_chemprops_bit_for_bit(mode):
    """Atom (mass included) and bond matrices equal Chemprop's float32 tensors exactly; edges in Chemprop's
    order, the reverse of edge e is e ^ 1 as in its rev_edge_index."""
    ref, spec = np.load(FIXTURE / "features_ref.npz"), chemprop_spec(mode)
    graphs = [smiles_to_arrays(s, spec) for s in SMILES]
    x = torch.from_numpy(np.concatenate([g.x for g in graphs]))
    V, E = chemprop_inputs(spec, x, torch.from_numpy(np.concatenate([g.edge_attr for g in graphs])))
    assert np.array_equal(V.numpy(), ref[f"{mode}/V"]) and np.array_equal(E.numpy(), ref[f"{mode}/E"])
    assert [g.x.shape[0] for g in graphs] == ref["num_atoms"].tolist()
    assert np.array_equal(np.concatenate([g.edge_index for g in graphs], axis=1), ref["edge_index"])
    local_reverse = np.concatenate([np.arange(g.edge_index.shape[1]) ^ 1 for g in graphs])  # per molecule
    assert np.array_equal(local_reverse, ref["rev_edge_index"])


def test_mass_travels_losslessly_and_spec_round_trips():
    values = np.array([0.12011, 1.26904, 0.0200, 1.95078])
    bits = encode_float32(values)
    assert bits.dtype == np.int64 and (bits >= 0).all()
    assert np.array_equal(decode_float32(torch.from_numpy(bits)).numpy(), values.astype(np.float32))
    spec = chemprop_spec()
    assert type(spec).from_dict(spec.to_dict()) == spec and spec.engine == "chemprop"
    assert max(spec.atom_vocab_sizes) > 256  # float32 bit patterns never travel as uint8 (molgnn-predict)


@pytest.mark.parametrize("model,preds", list(MODELS.items()))
def test_predictions_equal_chemprop_predict(model, preds, tmp_path):
    """molgnn-predict on a whole Chemprop model file gives `chemprop predict`'s numbers (bar 1e-4; measured
    <= 1.1e-7 in memory, 5e-7 through the CSV writer's 6 decimals)."""
    from molgnn.predict import predict_file

    predict_file(
        str(FIXTURE / model), FIXTURE / "smiles.csv", tmp_path / "p.csv", num_workers=0, progress=False
    )
    ours, theirs = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(FIXTURE / preds)
    deviation = np.abs(ours["logS"].to_numpy() - theirs["logS"].to_numpy()).max()
    print(f"{model}: max |molgnn - chemprop predict| = {deviation:.2e}")
    assert ours["valid"].all() and len(ours) == len(theirs) and deviation < 1e-4


@pytest.mark.parametrize(
    "model,fps",
    [("model_v2_norm.pt", "fps_v2_norm_0.csv"), ("foundation_like_mp.pt", "fps_foundation_like.csv")],
)
def test_fingerprints_equal_chemprops(model, fps):
    """The imported encoder's output is Chemprop's learned fingerprint (`chemprop fingerprint`, FFN block 0;
    for a CheMeleon-shaped message-passing file, its mean aggregation)."""
    emb = embed_smiles(load_chemprop_encoder(FIXTURE / model), SMILES, num_workers=0)
    assert not emb.failures and np.abs(emb.values - pd.read_csv(FIXTURE / fps).to_numpy()).max() < 1e-5


def test_what_is_read_from_the_files():
    a = read_chemprop(FIXTURE / "model_v2_norm.pt")
    assert a.encoder_args | {"activation_args": None} == dict(
        mode="V2",
        hidden_dim=64,
        depth=2,
        bias=False,
        dropout=0.0,
        activation="ReLU",
        activation_args=None,
        undirected=False,
        aggregation="norm",
        norm=100.0,
        batch_norm=False,
    )
    assert a.target_names == ["logS"] and a.head_args["hidden_dims"] == [32]
    b = read_chemprop(FIXTURE / "model_v1_mean_bn.pt")
    assert (b.encoder_args["mode"], b.encoder_args["aggregation"], b.encoder_args["batch_norm"]) == (
        "V1",
        "mean",
        True,
    )
    assert (b.encoder_args["activation"], b.encoder_args["activation_args"]) == (
        "LeakyReLU",
        {"negative_slope": 0.01},
    )
    assert is_chemprop_file(FIXTURE / "foundation_like_mp.pt") and not is_chemprop_file(
        FIXTURE / "smiles.csv"
    )
    assert load_models(FIXTURE / "model_v2_norm.pt")[0].columns == ["logS"]
    with pytest.raises(CheckpointError, match="message-passing-only file has no predictor"):
        load_chemprop_predictor(FIXTURE / "foundation_like_mp.pt")
    from molgnn.checkpoint import load_encoder

    with pytest.raises(CheckpointError, match="for a Chemprop model file use encoder=chemprop"):
        load_encoder(FIXTURE / "model_v2_norm.pt")  # encoder=pretrained refuses it and says what to use


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _chemprop_shaped(tmp_path, monkeypatch, payload) -> object:
    """A file that names chemprop classes, as Chemprop's do (fake chemprop modules while saving only)."""
    for name in ("chemprop", "chemprop.nn", "chemprop.nn.agg"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    agg = type("MeanAggregation", (), {"__module__": "chemprop.nn.agg", "__qualname__": "MeanAggregation"})
    sys.modules["chemprop.nn.agg"].MeanAggregation = agg
    path = tmp_path / "model.pt"
    torch.save(
        {
            "hyper_parameters": {
                "agg": {"dim": 0, "cls": agg},
                "message_passing": {"d_h": 8},
                "predictor": payload,
            },
            "state_dict": {"message_passing.W_i.weight": torch.zeros(8, 86)},
            "output_columns": ["y"],
        },
        path,
    )
    for name in ("chemprop.nn.agg", "chemprop.nn", "chemprop"):
        monkeypatch.delitem(sys.modules, name)
    return path


def test_malicious_chemprop_file_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = _chemprop_shaped(tmp_path, monkeypatch, {"activation": _RunsCode(marker)})
    assert is_chemprop_file(path)  # it takes the Chemprop route ...
    for load in (load_models, load_chemprop_encoder):
        with pytest.raises(CheckpointError) as err:
            load(path)
        message = str(err.value)  # ... and is refused there, in one line naming the global
        assert "\n" not in message and ("GLOBAL posix.system" in message or "GLOBAL os.system" in message)
        assert not marker.exists(), "the pickle payload ran"
    assert "chemprop" not in sys.modules  # nothing the file names was imported


def test_unlisted_chemprop_class_is_refused(tmp_path, monkeypatch):
    for name in ("chemprop", "chemprop.nn", "chemprop.nn.evil"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    evil = type("Payload", (), {"__module__": "chemprop.nn.evil", "__qualname__": "Payload"})
    sys.modules["chemprop.nn.evil"].Payload = evil
    torch.save({"hyper_parameters": {"x": evil()}, "state_dict": {}}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"refused: .*GLOBAL chemprop\.nn\.evil\.Payload"):
        load_chemprop_encoder(tmp_path / "m.pt")


@pytest.mark.slow
def test_imported_encoder_fine_tunes_and_predicts(compose, tmp_path):
    """molgnn-train encoder=chemprop encoder.path=<Chemprop file> trains 1 epoch; the checkpoint carries the
    Chemprop spec and predicts from SMILES."""
    from molgnn.checkpoint import safe_load
    from molgnn.cli.train import train
    from molgnn.predict import predict_file

    cfg = compose(
        "train",
        [
            "encoder=chemprop",
            f"encoder.path={FIXTURE / 'model_v2_norm.pt'}",
            *ESOL_CSV_QUIET,
            "trainer.max_epochs=1",
            "uncertainty=none",
        ],
    )
    assert train(cfg, tmp_path / "run")["epochs"] == 1
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    blob = safe_load(ckpt)
    assert (
        blob["molgnn"]["encoder"]["family"] == "chemprop" and blob["molgnn"]["spec"]["engine"] == "chemprop"
    )
    start = load_chemprop_encoder(FIXTURE / "model_v2_norm.pt").state_dict()["message_passing.W_i.weight"]
    assert not torch.equal(blob["state_dict"]["encoder.message_passing.W_i.weight"], start)
    (tmp_path / "new.smi").write_text("CCO\nc1ccccc1O\nnot_a_smiles\n")
    predict_file(str(ckpt), tmp_path / "new.smi", tmp_path / "p.csv", num_workers=0, progress=False)
    pred = pd.read_csv(tmp_path / "p.csv")
    assert pred["valid"].tolist() == [True, True, False] and np.isfinite(pred["logS"][:2]).all()


@pytest.mark.slow
def test_frozen_chemeleon_shaped_encoder_trains_a_head(compose, tmp_path):
    from molgnn.cli.train import train

    cfg = compose(
        "train",
        [
            "encoder=chemprop",
            f"encoder.path={FIXTURE / 'foundation_like_mp.pt'}",
            "task.freeze_encoder=true",
            "task.precompute_embeddings=true",
            *ESOL_CSV_QUIET,
            "trainer.max_epochs=2",
        ],
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["epochs"] == 2 and np.isfinite(metrics["test/rmse"])
