"""Transfer: frozen / partially frozen / gradually unfrozen / fine-tuned training on an imported encoder,
precomputed embeddings, bundles of heads, embedding export, and refusing unsafe or broken files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch_geometric.data import Batch

import molgnn.cli  # noqa: F401  (registers the molgnn_root resolver)
from molgnn.checkpoint import export_encoder, load_encoder, safe_load
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.graph import smiles_to_graph
from molgnn.nn.hu2020 import Hu2020GCN
from molgnn.predictor import load_predictor
from molgnn.tasks.anchor import WeightAnchor
from molgnn.tasks.freezing import EncoderFreezer, make_freezer
from molgnn.transfer import bundle_checkpoints, load_foreign_encoder

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
QUIET = ["~callbacks.rich_progress_bar", "~callbacks.lr_monitor", "logger=none", "head.hidden_dim=16"]
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCCCCCCC(=O)O", "ClC(Cl)Cl"]


def _compose(overrides: list[str], cache: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", [f"paths.cache_dir={cache}", "paths.output_dir=unused", *overrides])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny GINE encoder exported as encoder.pt, and molgnn-train runs on it (each trained once)."""
    from molgnn.cli.train import train

    tmp = tmp_path_factory.mktemp("transfer")
    cfg = _compose(
        ["encoder=gine", "encoder.hidden_dim=32", "encoder.num_layers=2", "encoder.dropout=0.0"],
        tmp / "cache",
    )
    torch.manual_seed(0)
    encoder = instantiate(cfg.encoder)
    export_encoder(encoder, tmp / "encoder.pt", pretraining={"objective": "none (test)"})
    frame = pd.read_csv(FIXTURES / "esol_small.csv")
    frame.assign(y2=2 * frame.logS + 1).drop(columns="logS").to_csv(tmp / "second.csv", index=False)
    # monitor=null: the checkpoints hold the final epoch (Lightning writes last.ckpt only with a new best)
    base = [
        "encoder=pretrained",
        f"encoder.path={tmp / 'encoder.pt'}",
        "data=csv",
        "split=random",
        "callbacks.model_checkpoint.monitor=null",
        *QUIET,
    ]
    first = [f"data.path={FIXTURES / 'esol_small.csv'}", "data.target_cols=[logS]", "task.name=solubility"]
    jobs = {
        "frozen": [*first, "task.freeze_encoder=true", "trainer.max_epochs=2"],
        "frozen_pre": [
            *first,
            "task.freeze_encoder=true",
            "++task.precompute_embeddings=true",
            "trainer.max_epochs=2",
        ],
        "second": [
            f"data.path={tmp / 'second.csv'}",
            "data.target_cols=[y2]",
            "task.name=second",
            "task.freeze_encoder=true",
            "++task.precompute_embeddings=true",
            "trainer.max_epochs=2",
        ],
        "preset": [*first, "experiment=frozen_head", "head.hidden_dim=16", "trainer.max_epochs=2"],
        "finetuned": [*first, "trainer.max_epochs=1"],
        "l2sp": [*first, "task.l2sp=1000.0", "trainer.max_epochs=1"],
        "layers1": [*first, "++task.freeze_layers=1", "trainer.max_epochs=2"],
        "gradual": [*first, "++task.unfreeze_every=1", "trainer.max_epochs=2"],
    }
    out = {"dir": tmp, "encoder": tmp / "encoder.pt"}
    for name, overrides in jobs.items():
        out[name] = train(_compose([*base, *overrides], tmp / "cache"), tmp / name)
    return out


def _encoder_state(run_dir: Path, which: str = "last") -> dict:
    state = safe_load(run_dir / "checkpoints" / f"{which}.ckpt")["state_dict"]
    return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}


def _changed(runs, name: str) -> set[str]:
    before = safe_load(runs["encoder"])["state_dict"]
    after = _encoder_state(runs["dir"] / name)
    assert set(before) == set(after)
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["frozen", "frozen_pre", "second", "preset"])
def test_frozen_training_leaves_every_encoder_tensor_bit_identical(runs, name):
    assert _changed(runs, name) == set()  # weights, batch-norm running stats and counters
    before = safe_load(runs["encoder"])["state_dict"]
    best = _encoder_state(runs["dir"] / name, "best")
    assert all(torch.equal(before[k], best[k]) for k in before)


@pytest.mark.slow
def test_precomputed_embeddings_train_the_same_head(runs):
    """Same seed, same batches, same frozen encoder: the head trained on precomputed embeddings matches."""
    a, b = runs["frozen"], runs["frozen_pre"]
    assert b["time/precompute_s"] > 0 and "time/precompute_s" not in a
    assert abs(a["val/rmse"] - b["val/rmse"]) < 1e-4 and abs(a["test/rmse"] - b["test/rmse"]) < 1e-4
    heads = [
        {
            k: v
            for k, v in safe_load(runs["dir"] / n / "checkpoints" / "last.ckpt")["state_dict"].items()
            if k.startswith("head.")
        }
        for n in ("frozen", "frozen_pre")
    ]
    assert all(torch.allclose(heads[0][k], heads[1][k], atol=1e-5) for k in heads[0])
    preds = [pd.read_csv(runs["dir"] / n / "test_predictions.csv") for n in ("frozen", "frozen_pre")]
    assert np.allclose(preds[0].logS_pred, preds[1].logS_pred, atol=1e-4)


@pytest.mark.slow
def test_frozen_head_preset_trains_a_dropout_head_on_precomputed_embeddings(runs):
    """experiment=frozen_head: encoder frozen (above), embeddings computed once, the preset's head dropout."""
    assert runs["preset"]["time/precompute_s"] > 0
    head = safe_load(runs["dir"] / "preset" / "checkpoints" / "last.ckpt")["molgnn"]["heads"][0]["args"]
    assert head["dropout"] == 0.2 and head["hidden_dim"] == 16  # the preset's dropout; the command line wins


@pytest.mark.slow
def test_fine_tuning_changes_the_encoder(runs):
    changed = _changed(runs, "finetuned")
    assert {"convs.0.nn.0.weight", "convs.1.nn.0.weight", "norms.0.running_mean"} <= changed


def _distance_from_start(runs, name: str) -> float:
    before = safe_load(runs["encoder"])["state_dict"]
    after = _encoder_state(runs["dir"] / name)
    params = {k for k, _ in load_encoder(runs["encoder"]).named_parameters()}
    return sum(float((after[k] - before[k]).pow(2).sum()) for k in params) ** 0.5


@pytest.mark.slow
def test_l2sp_keeps_the_encoder_near_its_start(runs):
    """Same seed, data and epochs as plain fine-tuning: the L2-SP run moves the encoder much less, yet moves it."""
    plain, anchored = _distance_from_start(runs, "finetuned"), _distance_from_start(runs, "l2sp")
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
def test_freeze_layers_freezes_exactly_the_embeddings_and_first_layers(runs):
    before = safe_load(runs["encoder"])["state_dict"]
    frozen = {
        k for k in before if k.startswith(("atom_embedding.", "convs.0.", "bond_embeddings.0.", "norms.0."))
    }
    changed = _changed(runs, "layers1")
    assert not changed & frozen  # embeddings + layer 0 bit-identical, batch-norm statistics included
    params = {k for k, _ in load_encoder(runs["encoder"]).named_parameters()}
    assert params - frozen <= changed  # every other weight trained
    assert {"norms.1.running_mean", "convs.1.nn.1.running_var"} <= changed


@pytest.mark.slow
def test_gradual_unfreezing_trains_the_top_layer_first(runs):
    changed = _changed(runs, "gradual")  # epoch 0: head only; epoch 1: top layer (+ readout)
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


def _predict(model, smiles: list[str]) -> torch.Tensor:
    """``Predictor.predict_batch``: every head's predictions in original units."""
    return model.predict_batch(Batch.from_data_list([smiles_to_graph(s, model.spec) for s in smiles]))


@pytest.mark.slow
def test_bundle_of_two_heads_predicts_what_each_head_predicts_alone(runs, tmp_path):
    ckpts = [runs["dir"] / n / "checkpoints" / "best.ckpt" for n in ("frozen", "second")]
    path = bundle_checkpoints(ckpts, tmp_path / "bundle.pt")
    blob = safe_load(path)
    header = blob["molgnn"]
    assert header["kind"] == "bundle" and [h["name"] for h in header["heads"]] == ["solubility", "second"]
    assert {k.split(".")[0] for k in blob["state_dict"]} == {"encoder", "heads"}
    assert all(h["encoder_fingerprint"] == header["encoder"]["fingerprint"] for h in header["heads"])
    bundle = load_predictor(path)
    assert bundle.qualified_columns == ["solubility/logS", "second/y2"] and bundle.columns == ["logS", "y2"]
    alone = torch.cat([_predict(load_predictor(c), SMILES) for c in ckpts], dim=1)
    assert torch.allclose(_predict(bundle, SMILES), alone, atol=1e-6)
    # and what molgnn-train itself predicted for its test rows
    test = pd.read_csv(runs["dir"] / "frozen" / "test_predictions.csv")
    assert np.allclose(_predict(bundle, test.smiles.tolist())[:, 0].numpy(), test.logS_pred, atol=1e-5)


@pytest.mark.slow
def test_bundle_refuses_a_head_trained_on_another_encoder(runs, tmp_path):
    other = runs["dir"] / "finetuned" / "checkpoints" / "best.ckpt"
    with pytest.raises(
        CheckpointError, match=rf"{other}: head 'solubility' was trained on encoder \w+, not on the "
    ):
        bundle_checkpoints([runs["dir"] / "frozen" / "checkpoints" / "best.ckpt", other], tmp_path / "b.pt")
    with pytest.raises(MolgnnError, match="two heads are named 'solubility'"):
        bundle_checkpoints([runs["dir"] / "frozen" / "checkpoints" / "best.ckpt"] * 2, tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={cwd / 'hydra'}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.mark.slow
def test_bundle_cli(runs, tmp_path):
    a, b = (runs["dir"] / n / "checkpoints" / "best.ckpt" for n in ("frozen", "second"))
    proc = _cli(
        "molgnn.cli.bundle", f"heads=[{a},{b}]", "names=[solubility,other]", "output=props.pt", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_predictor(tmp_path / "props.pt").qualified_columns == ["solubility/logS", "other/y2"]
    c = runs["dir"] / "finetuned" / "checkpoints" / "best.ckpt"
    proc = _cli("molgnn.cli.bundle", f"heads=[{a},{c}]", "output=bad.pt", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"molgnn-bundle: error: {c}: head 'solubility' was trained on")
    )


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_embed_keeps_every_row_in_order(runs, tmp_path, fmt):
    """molgnn-embed end to end for .npy; the same functions in-process for .parquet (saves a start-up)."""
    src = FIXTURES / "esol_bad_rows.csv"
    if fmt == "npy":
        proc = _cli(
            "molgnn.cli.embed",
            f"input={src}",
            f"checkpoint={runs['encoder']}",
            "output=emb.npy",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        values, ids = np.load(tmp_path / "emb.npy"), pd.read_csv(tmp_path / "emb.ids.csv")
    else:
        from molgnn.cli.embed import read_smiles_ids, write_embeddings
        from molgnn.transfer import embed_smiles

        smiles, names = read_smiles_ids(src, "smiles", None)
        write_embeddings(
            embed_smiles(load_encoder(runs["encoder"]), smiles, batch_size=7, chunk_rows=25),
            names,
            tmp_path / "emb.parquet",
        )
        ids = pd.read_parquet(tmp_path / "emb.parquet")
        values = np.stack([v if v is not None else np.full(32, np.nan) for v in ids.embedding])
    smiles = pd.read_csv(src).smiles.tolist()
    assert values.shape == (len(smiles), 32) and ids.row.tolist() == list(range(len(smiles)))
    invalid = [r for r in range(len(smiles)) if not ids.valid[r]]
    assert invalid and all(np.isnan(values[r]).all() for r in invalid) and ids.reason[invalid[0]]
    encoder = load_encoder(runs["encoder"]).eval()
    good = [r for r in range(len(smiles)) if ids.valid[r]]
    with torch.no_grad():
        expected = encoder(Batch.from_data_list([smiles_to_graph(smiles[r], encoder.spec) for r in good]))
    assert np.allclose(values[good], expected.numpy(), atol=1e-5)


class _Payload:
    """Unpickling this runs a shell command: the attack weights_only=True must stop."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"molgnn": {"format_version": 1}, "x_embedding1.weight": _Payload(marker)}, evil)
    for load in (
        lambda p: load_foreign_encoder("hu2020_gcn", p),
        load_encoder,
        load_predictor,
        lambda p: bundle_checkpoints([p], tmp_path / "out.pt"),
    ):
        with pytest.raises(CheckpointError, match="refused: .*never executes code from a checkpoint"):
            load(evil)
    assert not marker.exists()


def test_broken_files_get_clear_errors(runs_free_encoder, tmp_path):
    good = runs_free_encoder
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    newer = tmp_path / "newer.pt"
    blob = safe_load(good)
    blob["molgnn"]["format_version"] = 99
    torch.save(blob, newer)
    for path, message in (
        (truncated, "not a readable checkpoint"),
        (text, "not a readable checkpoint"),
        (newer, "format version 99 is newer"),
    ):
        for load in (load_encoder, load_predictor, lambda p: bundle_checkpoints([p], tmp_path / "o.pt")):
            with pytest.raises(CheckpointError, match=message):
                load(path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_foreign_encoder("hu2020_gcn", truncated)
    with pytest.raises(CheckpointError, match="this is a molgnn checkpoint; load it with encoder=pretrained"):
        load_foreign_encoder("hu2020_gcn", good)
    with pytest.raises(CheckpointError, match="a 'encoder' file has no property heads"):
        load_predictor(good)


@pytest.fixture
def runs_free_encoder(tmp_path) -> Path:
    """A small molgnn encoder.pt made without training."""
    return export_encoder(Hu2020GCN(hidden_dim=8, num_layers=2), tmp_path / "enc.pt")


def test_spec_mismatch_names_the_differing_fields(tmp_path):
    """encoder=pretrained passes the run's featurizer as expect_spec: a different one is listed, not loaded."""
    from dataclasses import replace

    from molgnn.featurize.spec import FeatureVocab, default_spec
    from molgnn.nn.gine import GINEEncoder

    path = export_encoder(GINEEncoder(default_spec(), hidden_dim=8, num_layers=1), tmp_path / "enc.pt")
    spec = default_spec()
    other = replace(
        spec,
        version=2,
        atom_features=(
            *spec.atom_features[:1],
            FeatureVocab("degree", (0, 1, 2, 3, 4)),
            *spec.atom_features[2:],
        ),
    )
    with pytest.raises(CheckpointError) as err:
        load_encoder(path, expect_spec=other)
    assert "featurizer spec differs" in str(err.value)
    assert "version: 2 != 1" in str(err.value) and "atom_features[degree].values" in str(err.value)


def test_dropout_override_changes_the_rate_and_no_weight(tmp_path):
    """encoder.dropout=0.2 on a pretrained file: same tensors, dropout active in train mode, recorded in args."""
    from molgnn.featurize.spec import default_spec
    from molgnn.nn.dmpnn import DMPNNEncoder

    torch.manual_seed(0)
    path = export_encoder(DMPNNEncoder(default_spec(), hidden_dim=16, num_layers=2), tmp_path / "enc.pt")
    plain, dropped = load_encoder(path), load_encoder(path, dropout=0.2)
    assert dropped.args["dropout"] == 0.2 and plain.args["dropout"] == 0.0
    for (k, a), (_, b) in zip(plain.state_dict().items(), dropped.state_dict().items()):
        assert torch.equal(a, b), k
    batch = Batch.from_data_list(
        [smiles_to_graph(s, default_spec()) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    )
    with torch.no_grad():
        assert torch.allclose(plain.eval()(batch), dropped.eval()(batch))
        torch.manual_seed(1)
        assert not torch.allclose(plain.train()(batch), dropped.train()(batch))
    with pytest.raises(CheckpointError, match=r"encoder.dropout must be in \[0, 1\)"):
        load_encoder(path, dropout=1.5)


@pytest.mark.slow
def test_bundle_refuses_a_head_with_another_featurizer_spec(runs, tmp_path):
    good = runs["dir"] / "frozen" / "checkpoints" / "best.ckpt"
    blob = safe_load(runs["dir"] / "second" / "checkpoints" / "best.ckpt")
    blob["molgnn"]["spec"]["version"] = 7  # same weights, other featurization: must not be mixed
    torch.save(blob, tmp_path / "other_spec.ckpt")
    with pytest.raises(
        CheckpointError, match=r"other_spec.ckpt: featurizer spec differs from .*version: 1 != 7"
    ):
        bundle_checkpoints([good, tmp_path / "other_spec.ckpt"], tmp_path / "b.pt")
