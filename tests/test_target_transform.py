"""data.target_transform: each kind round-trips and matches scikit-learn; fitted on the training rows only;
auto's held-out likelihood choice; a bad training value is one line naming file, row and column; a real
tiny molgnn-train run stores the transform, and molgnn-predict / molgnn.load answer in the raw units."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import PowerTransformer, QuantileTransformer

import molgnn
from molgnn.data import target_transform as tt
from molgnn.data.scaler import TargetScaler
from molgnn.errors import InputFileError, MolgnnError
from molgnn.predict import predict_file

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def _lognormal(n: int, seed: int) -> np.ndarray:
    return 10 ** np.random.default_rng(seed).normal(1.0, 0.8, n)


@pytest.mark.parametrize("kind", tt.KINDS)
def test_each_kind_round_trips(kind):
    y = _lognormal(400, 0)
    record = tt.fit(kind, y)
    grid = np.r_[_lognormal(200, 1).clip(y.min(), y.max()), np.nan]
    z = tt.forward(record, grid)
    np.testing.assert_allclose(tt.inverse(record, z), grid, rtol=1e-9)
    assert np.isnan(z[-1])
    if kind != "none":
        assert np.std(z[:-1]) < 0.5 * np.std(grid[:-1])  # the long tail is pulled in


def test_yeo_johnson_and_quantile_agree_with_sklearn():
    y, new = _lognormal(500, 2), np.r_[_lognormal(300, 3), -5.0, 1e5]
    pt = PowerTransformer(method="yeo-johnson", standardize=False).fit(y[:, None])
    yj = tt.fit("yeo_johnson", y)
    np.testing.assert_allclose(tt.forward(yj, new), pt.transform(new[:, None])[:, 0], rtol=1e-10)
    z = np.linspace(-3, 3, 61)
    np.testing.assert_allclose(tt.inverse(yj, z), pt.inverse_transform(z[:, None])[:, 0], rtol=1e-10)
    ties = np.round(y, 0)  # repeated values: sklearn averages the two interpolation directions
    qt = QuantileTransformer(n_quantiles=500, output_distribution="normal", random_state=0).fit(ties[:, None])
    q = tt.fit("quantile", ties)
    np.testing.assert_allclose(tt.forward(q, new), qt.transform(new[:, None])[:, 0], atol=1e-12)
    z = np.linspace(-6, 6, 121)
    np.testing.assert_allclose(tt.inverse(q, z), qt.inverse_transform(z[:, None])[:, 0], atol=1e-12)


def test_scaler_with_transform_round_trips_and_reads_old_headers():
    y = torch.tensor(np.c_[_lognormal(50, 4), np.random.default_rng(5).normal(size=50)], dtype=torch.float32)
    y[3, 0] = float("nan")
    scaler = TargetScaler.fit(y, [{"kind": "log"}, {"kind": "none"}])
    scaled = scaler.transform(y)
    assert abs(float(torch.nanmean(scaled[:, 0]))) < 1e-5  # standardized after the log
    torch.testing.assert_close(scaler.inverse(scaled), y, rtol=1e-5, atol=1e-5, equal_nan=True)
    old = TargetScaler.from_dict({"mean": [1.0], "std": [2.0]})  # a file from before transforms
    assert old.transforms is None and float(old.inverse(torch.tensor([[1.0]]))) == 3.0


def test_fitted_on_training_rows_only():
    targets = np.r_[_lognormal(80, 6), 1e6, 1e7][:, None]  # the two extremes are validation rows
    train, valid = list(range(80)), [80, 81]
    records, _ = tt.fit_target_transforms(targets, train, valid, ["quantile"], "t.csv", ["y"])
    assert max(records[0]["quantiles"]) == targets[:80, 0].max()
    (yj,), _ = tt.fit_target_transforms(targets, train, valid, ["yeo_johnson"], "t.csv", ["y"])
    assert yj["lambda"] == tt.fit("yeo_johnson", targets[:80, 0])["lambda"]


def test_auto_picks_a_log_like_transform_for_lognormal_and_none_for_gaussian():
    record, scores = tt.auto(_lognormal(1500, 7), _lognormal(300, 8))
    assert record["kind"] in ("log", "yeo_johnson") and scores["none"] > scores[record["kind"]] + 1
    rng = np.random.default_rng(9)
    record, scores = tt.auto(rng.normal(5, 1, 1500), rng.normal(5, 1, 300))
    assert record["kind"] == "none" and set(scores) == set(tt.KINDS)


def test_quantile_score_is_not_fooled_by_repeated_measurements():
    """Measured values repeat (a validation value equal to a training one) and near-equal ones sit next to
    each other: the quantile candidate's density must stay a density (before the m-spacing estimate it won
    by 7 nats per molecule on rPPB), so log still wins on rounded log-normal values."""
    rng = np.random.default_rng(12)
    y, v = (np.round(10 ** rng.normal(1, 0.8, n), 1) + 0.1 for n in (1500, 300))
    y[::7] += 1e-9
    record, scores = tt.auto(y, v)
    assert record["kind"] == "log" and abs(scores["quantile"] - scores["log"]) < 0.2


def test_held_out_nll_counts_the_jacobian():
    """log and none give the same density to a value when the Jacobian is counted: the score of log on
    y equals the Gaussian NLL of log(y) plus mean(log y)."""
    y, v = _lognormal(300, 10), _lognormal(100, 11)
    lt, lv = np.log(y), np.log(v)
    gaussian = 0.5 * np.log(2 * np.pi * lt.var()) + np.mean((lv - lt.mean()) ** 2) / (2 * lt.var())
    assert tt.held_out_nll({"kind": "log"}, y, v) == pytest.approx(gaussian + np.mean(lv))


def test_bad_settings_and_values_are_one_line(tmp_path):
    with pytest.raises(MolgnnError, match="data.target_transform='boxcox'"):
        tt.resolve_kinds("boxcox", ["y"])
    with pytest.raises(MolgnnError, match="one per target"):
        tt.resolve_kinds(["log", "log"], ["a"])
    assert tt.resolve_kinds(["log", "auto"], ["a", "b"]) == ["log", "auto"]
    targets = np.array([[1.0], [2.0], [0.0], [-3.0], [5.0]])
    with pytest.raises(InputFileError) as err:
        tt.fit_target_transforms(targets, [0, 1, 2, 4], [3], ["log"], "data/t.csv", ["clint"])
    assert str(err.value).startswith(
        "data/t.csv: row 2 (line 4), column 'clint': training target 0 is not > 0"
    )


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory) -> Path:
    """The ESOL fixture in 'raw units': 10 ** (logS + 3), a positive long-tailed target."""
    frame = pd.read_csv(FIXTURES / "esol_small.csv")
    frame["logS"] = 10.0 ** (frame["logS"] + 3)
    path = tmp_path_factory.mktemp("raw") / "raw.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_log_on_a_nonpositive_training_value_fails_in_one_line(raw_csv, tmp_path):
    frame = pd.read_csv(raw_csv)
    frame.loc[7, "logS"] = -0.5
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    split = tmp_path / "split.json"
    split.write_text(
        json.dumps({"train": list(range(90)), "valid": list(range(90, 105)), "test": list(range(105, 120))})
    )
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        "data=csv",
        f"data.path={bad}",
        "data.target_cols=[logS]",
    ]
    cmd += [
        "split=predefined",
        f"split.path={split}",
        "data.target_transform=log",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    cmd += [f"paths.cache_dir={tmp_path / 'cache'}", "logger=none"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bad}: row 7 (line 9), column 'logS': training target -0.5 is not > 0" in proc.stderr


@pytest.mark.slow
def test_mve_with_a_transform_is_refused(compose, raw_csv):
    from molgnn.cli.train import train

    cfg = compose("train", ["data=csv", f"data.path={raw_csv}", "data.target_cols=[logS]", "uncertainty=mve"])
    cfg.data.target_transform = "auto"
    with pytest.raises(MolgnnError, match="uncertainty.method=mve with data.target_transform=auto"):
        train(cfg)


@pytest.fixture(scope="module")
def log_run(train_tiny, raw_csv) -> Path:
    return train_tiny("tt_log", f"data.path={raw_csv}", "data.target_transform=log", "trainer.max_epochs=2")


@pytest.mark.slow
def test_checkpoint_keeps_the_transform_and_predictions_are_in_raw_units(log_run, tmp_path):
    ckpt = log_run / "checkpoints" / "best.ckpt"
    header = torch.load(ckpt, weights_only=True)["molgnn"]
    assert header["heads"][0]["scaler"]["transforms"] == [{"kind": "log"}]
    ref = pd.read_csv(log_run / "test_predictions.csv")
    assert (ref["logS_pred"] > 0).all()  # exp of the model's output: raw units
    metrics = json.loads((log_run / "metrics.json").read_text())
    assert metrics["target_transform"] == {"logS": "log"}
    mae = np.mean(np.abs(ref["logS_pred"] - ref["logS"]))  # metrics in the user's units, not log units
    assert metrics["test/mae"] == pytest.approx(mae, rel=1e-4)
    smi = tmp_path / "t.smi"
    smi.write_text("\n".join(ref["smiles"]) + "\n")
    predict_file(str(ckpt), smi, tmp_path / "p.csv", progress=False, num_workers=0)
    out = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(out["logS"], ref["logS_pred"], rtol=1e-5)
    assert (out["logS_lower"] <= out["logS"]).all() and (out["logS"] <= out["logS_upper"]).all()
    api = molgnn.load(ckpt).predict(list(ref["smiles"]), uncertainty=False)
    np.testing.assert_allclose(api["logS"], ref["logS_pred"], rtol=1e-5)


@pytest.mark.slow
def test_auto_run_reports_its_choice_and_scores(train_tiny, raw_csv):
    run = train_tiny("tt_auto", f"data.path={raw_csv}", "data.target_transform=auto", "uncertainty=none")
    metrics = json.loads((run / "metrics.json").read_text())
    chosen = metrics["target_transform"]["logS"]
    scores = metrics["target_transform_scores"]["logS"]
    assert chosen != "none" and set(scores) == set(tt.KINDS)
    assert scores[chosen] == min(v for v in scores.values() if v is not None)
    header = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["molgnn"]
    assert header["heads"][0]["scaler"]["transforms"][0]["kind"] == chosen
