"""Configs compose and instantiate; molgnn-train end to end on a file with bad rows; checkpoints."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from molgnn.checkpoint import build_encoder, build_head, read_header, safe_load, sub_state
from molgnn.cli.train import train
from molgnn.data.scaler import TargetScaler

TINY = ["encoder.hidden_dim=32", "encoder.num_layers=2", "head.hidden_dim=16", "~callbacks.rich_progress_bar"]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["data=freesolv", "split=random"],
        ["data=lipophilicity", "encoder=gine", "logger=tensorboard"],
        ["encoder.readout=attention", "split=predefined", "split.path=x.json"],
    ],
)
def test_configs_compose_and_instantiate(compose, overrides):
    cfg = compose("train", overrides)
    encoder = instantiate(cfg.encoder)
    assert encoder.spec.fingerprint()
    instantiate(cfg.split)
    dm = instantiate(cfg.data, _partial_=True)(split=None, spec=encoder.spec)
    assert dm.target_cols == list(cfg.data.target_cols)
    head = instantiate(cfg.head)(in_dim=encoder.out_dim, out_dim=1)
    task = instantiate(cfg.task)(
        encoder=encoder, head=head, scaler=TargetScaler.identity(1), target_names=["y"]
    )
    assert task.configure_optimizers()["optimizer"].param_groups[0]["lr"] == cfg.task.optimizer.lr
    instantiate(cfg.trainer, logger=False, enable_progress_bar=False)


@pytest.mark.slow
def test_train_cli_reports_bad_rows_and_writes_outputs(fixtures, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        "data=csv",
        f"data.path={fixtures / 'esol_bad_rows.csv'}",
        "data.smiles_col=smiles",
        "data.target_cols=[logS]",
        "split=random",
        "trainer.max_epochs=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={out}",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 invalid row(s)" in proc.stdout + proc.stderr
    invalid = pd.read_csv(out / "invalid_rows.csv")
    assert invalid.row.tolist() == [5, 11, 17, 23]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val/rmse", "test/rmse", "test/mae", "test/r2"} <= set(metrics)
    preds = pd.read_csv(out / "test_predictions.csv")
    assert len(preds) == 5 and {"row", "smiles", "logS", "logS_pred"} <= set(preds.columns)
    assert (out / "parity.png").stat().st_size > 1000 and (out / "config_resolved.yaml").exists()

    # the checkpoint loads with weights_only=True, carries its header, and reproduces the predictions
    blob = safe_load(out / "checkpoints" / "best.ckpt")
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["molgnn"]["kind"] == "model"
    header = read_header(blob, "best.ckpt")
    assert header["heads"][0]["target_names"] == ["logS"]
    encoder, head = build_encoder(header), build_head(header["heads"][0])
    encoder.load_state_dict(sub_state(blob["state_dict"], "encoder"))
    head.load_state_dict(sub_state(blob["state_dict"], "head"))
    scaler = header["heads"][0]["scaler"]
    from molgnn.featurize import smiles_to_graph
    from torch_geometric.data import Batch

    batch = Batch.from_data_list([smiles_to_graph(s, encoder.spec) for s in preds.smiles])
    encoder.eval(), head.eval()
    with torch.no_grad():
        y = head(encoder(batch)).squeeze(1) * scaler["std"][0] + scaler["mean"][0]
    assert torch.allclose(y, torch.tensor(preds.logS_pred.values, dtype=torch.float32), atol=1e-5)


@pytest.mark.slow
def test_missing_column_is_one_clear_line(fixtures, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        "data=csv",
        f"data.path={fixtures / 'esol_small.csv'}",
        "data.target_cols=[solubility]",
        f"hydra.run.dir={tmp_path}",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "esol_small.csv: no column 'solubility' (from data.target_cols[0])" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_resumes_from_last_checkpoint(compose, fixtures, tmp_path):
    base = [
        "data=csv",
        f"data.path={fixtures / 'esol_small.csv'}",
        "data.target_cols=[logS]",
        "split=random",
        "logger=none",
        "~callbacks.lr_monitor",
        *TINY,
    ]
    first = compose("train", base + ["trainer.max_epochs=2"])
    train(first, tmp_path / "a")
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    resumed = compose("train", base + ["trainer.max_epochs=3", f"ckpt_path={last}"])
    metrics = train(resumed, tmp_path / "b")
    assert metrics["epochs"] == 3
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    # best.ckpt also holds the calibration's domain index (attach_calibration): training goes on from it too
    best = tmp_path / "a" / "checkpoints" / "best.ckpt"
    assert any(k.startswith("domain.") for k in torch.load(best, weights_only=True)["state_dict"])
    again = train(compose("train", base + ["trainer.max_epochs=3", f"ckpt_path={best}"]), tmp_path / "c")
    assert again["epochs"] == 3 and "test/rmse" in again


def test_a_second_run_into_the_same_directory_replaces_its_checkpoints(compose, fixtures, tmp_path):
    base = ["data=csv", f"data.path={fixtures / 'esol_small.csv'}", "data.target_cols=[logS]", "split=random"]
    base += ["logger=none", "uncertainty=none", "diagnostics_molecules=0", *TINY]
    train(compose("train", base + ["trainer.max_epochs=2"]), tmp_path / "run")
    train(compose("train", base + ["trainer.max_epochs=1"]), tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    for name in ("best.ckpt", "last.ckpt"):  # the second run's (one epoch), not the first run's
        assert torch.load(checkpoints / name, weights_only=True)["epoch"] == 0


@pytest.mark.slow
def test_multirun_sweep_writes_one_metrics_file_per_seed(fixtures, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        "-m",
        "seed=0,1",
        "data=csv",
        f"data.path={fixtures / 'esol_small.csv'}",
        "data.target_cols=[logS]",
        "split=random",
        "trainer.max_epochs=1",
        "logger=none",
        "~callbacks.lr_monitor",
        f"paths.cache_dir={tmp_path / 'c'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert runs[0]["test/rmse"] != runs[1]["test/rmse"]  # the seed reaches the model


def test_head_input_norm_ignores_embedding_scale_and_round_trips_through_the_header():
    from molgnn.nn.heads import MLPHead

    torch.manual_seed(0)
    h = torch.randn(5, 8)
    normed, plain = MLPHead(8, 2, hidden_dim=16, input_norm=True), MLPHead(8, 2, hidden_dim=16)
    assert torch.allclose(normed(h), normed(12.0 * h), atol=1e-5)
    assert not torch.allclose(plain(h), plain(12.0 * h), atol=1e-3)
    rebuilt = build_head({"family": "mlp", "args": dict(normed.args)})
    rebuilt.load_state_dict(normed.state_dict())
    assert "norm.weight" in normed.state_dict() and torch.equal(rebuilt(h), normed(h))
    old_header_args = {k: v for k, v in plain.args.items() if k != "input_norm"}  # checkpoints made before it
    assert isinstance(build_head({"family": "mlp", "args": old_header_args}).norm, torch.nn.Identity)
