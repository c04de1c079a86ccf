"""Uncertainty end to end: a training run calibrates and reports, the checkpoint keeps the calibration,
molgnn-predict writes spreads, intervals and domain columns that agree with the training report, MVE and
ensembles, and molgnn-select ranks with a single calibrated model's spread."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from molgnn.checkpoint import read_header, safe_load
from molgnn.predict import predict_file
from molgnn.predictor import load_predictor
from molgnn.uncertainty.metrics import coverage
from conftest import CALIBRATED_COLUMNS, PREDICT_FAST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(train_tiny) -> Path:
    return train_tiny("cal", "uncertainty=distance", "trainer.max_epochs=3")


@pytest.fixture(scope="module")
def mve_run(train_tiny) -> Path:
    return train_tiny("mve", "uncertainty=mve", "trainer.max_epochs=3")


@pytest.fixture(scope="module")
def test_molecules(run, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The run's test molecules (smiles + measured logS) plus two invalid rows."""
    frame = pd.read_csv(run / "test_predictions.csv")[["smiles", "logS"]]
    frame = pd.concat([frame, pd.DataFrame({"smiles": ["not_a_smiles", "C1CC"], "logS": [np.nan, np.nan]})])
    path = tmp_path_factory.mktemp("mols") / "test.csv"
    frame.rename(columns={"logS": "measured"}).to_csv(path, index=False)
    return path, frame.reset_index(drop=True)


def test_run_reports_calibration_and_stores_it_in_the_checkpoint(run):
    report = json.loads((run / "calibration.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert (run / "calibration.png").stat().st_size > 0
    assert report["settings"]["method"] == "distance" and set(report["variants"]) == {
        "conformal",
        "distance+mondrian",
    }
    assert metrics["test/coverage90"] == pytest.approx(report["metrics"]["test/coverage90"])
    header = read_header(safe_load(run / "checkpoints" / "best.ckpt"), "best.ckpt")
    record = header["heads"][0]["calibration"]
    assert len(record["valid"]["rows"]) == len(record["valid"]["pred"]) > 0
    model = load_predictor(run / "checkpoints" / "best.ckpt")
    assert model.calibration == record  # round trip: the loaded model calibrates exactly as stored
    assert model.domain.embeddings.shape[1] == 32 and model.domain.fingerprints.shape[1] == 256


def test_predict_writes_intervals_and_domain_that_match_the_training_report(run, test_molecules, tmp_path):
    path, frame = test_molecules
    out = tmp_path / "p.csv"
    predict_file(run / "checkpoints" / "best.ckpt", path, out, **PREDICT_FAST)
    got = pd.read_csv(out)
    assert list(got.columns) == ["smiles", "measured", *CALIBRATED_COLUMNS, "valid", "error"]
    bad = ~got["valid"]
    assert bad.sum() == 2 and got.loc[bad, CALIBRATED_COLUMNS].isna().all().all()
    ok = got[~bad]
    assert (ok["logS_lower"] < ok["logS"]).all() and (ok["logS"] < ok["logS_upper"]).all()
    assert (
        ok["domain_similarity"].between(0, 1).all() and (ok["in_domain"] == (ok["domain_score"] <= 1)).all()
    )
    report = json.loads((run / "calibration.json").read_text())["metrics"]
    cov = coverage(frame["logS"].to_numpy()[~bad], ok["logS_lower"].to_numpy(), ok["logS_upper"].to_numpy())
    assert cov == pytest.approx(
        report["test/coverage90"], abs=1e-9
    )  # same model, same calibration, same intervals


def test_workers_that_featurize_and_predict_write_the_same_uncertainty_columns(run, test_molecules, tmp_path):
    """On CPU each worker featurizes and predicts its own jobs (fingerprints, domain, intervals included)."""
    path, _ = test_molecules
    predict_file(run / "checkpoints" / "best.ckpt", path, tmp_path / "here.csv", chunk_rows=7, **PREDICT_FAST)
    predict_file(
        run / "checkpoints" / "best.ckpt", path, tmp_path / "workers.csv", chunk_rows=7, progress=False,
        num_workers=2,
    )  # fmt: skip
    assert (tmp_path / "here.csv").read_bytes() == (tmp_path / "workers.csv").read_bytes()


def test_interval_level_and_switching_uncertainty_off(run, test_molecules, tmp_path):
    path, _ = test_molecules
    predict_file(
        run / "checkpoints" / "best.ckpt", path, tmp_path / "a.csv", interval_level=0.5, **PREDICT_FAST
    )
    predict_file(run / "checkpoints" / "best.ckpt", path, tmp_path / "b.csv", **PREDICT_FAST)
    predict_file(
        run / "checkpoints" / "best.ckpt", path, tmp_path / "c.parquet", uncertainty=False, **PREDICT_FAST
    )
    narrow, wide = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    width = lambda f: (f["logS_upper"] - f["logS_lower"]).dropna()  # noqa: E731
    assert (width(narrow) < width(wide)).all()
    np.testing.assert_allclose(narrow["logS"], wide["logS"])
    assert list(pd.read_parquet(tmp_path / "c.parquet").columns) == [
        "smiles",
        "measured",
        "logS",
        "valid",
        "error",
    ]


def test_mve_predicts_a_per_molecule_spread_and_reloads_identically(mve_run, test_molecules, tmp_path):
    path, _ = test_molecules
    ckpt = mve_run / "checkpoints" / "best.ckpt"
    assert read_header(safe_load(ckpt), ckpt)["heads"][0]["variance"] is True
    predict_file(ckpt, path, tmp_path / "a.csv", **PREDICT_FAST)
    predict_file(ckpt, path, tmp_path / "b.csv", **PREDICT_FAST)
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert a["logS_std"].dropna().nunique() > 5  # a spread per molecule, not one width for all
    test = pd.read_csv(mve_run / "test_predictions.csv")
    np.testing.assert_allclose(a["logS"].to_numpy()[: len(test)], test["logS_pred"], atol=1e-5)


def test_ensemble_of_calibrated_models(run, mve_run, test_molecules, tmp_path):
    path, _ = test_molecules
    ckpts = [str(r / "checkpoints" / "best.ckpt") for r in (run, mve_run)]
    predict_file(ckpts, path, tmp_path / "e.csv", **PREDICT_FAST)
    got = pd.read_csv(tmp_path / "e.csv")
    assert list(got.columns)[2:9] == ["logS_mean", *CALIBRATED_COLUMNS[1:]]
    one = [pd.read_csv(tmp_path / "e.csv")]  # the members' own means average to the ensemble mean
    for i, c in enumerate(ckpts):
        predict_file(c, path, tmp_path / f"m{i}.csv", **PREDICT_FAST)
        one.append(pd.read_csv(tmp_path / f"m{i}.csv"))
    np.testing.assert_allclose(got["logS_mean"], (one[1]["logS"] + one[2]["logS"]) / 2, atol=1e-5)
    assert (got["logS_std"].dropna() >= np.abs(one[1]["logS"] - one[2]["logS"]).dropna() / 2 - 1e-5).all()


def test_select_ranks_with_a_single_calibrated_models_spread(run, test_molecules, compose, tmp_path):
    from molgnn.cli.select import select

    path, _ = test_molecules
    cfg = compose(
        "select",
        [
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            f"input.path={path}",
            "num_workers=0",
            "strategy=ucb",
            "k=5",
            f"output_path={tmp_path / 's.csv'}",
        ],
    )
    select(cfg)
    got = pd.read_csv(tmp_path / "s.csv")
    assert len(got) == 5 and list(got["rank"]) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(got["score"], got["mean"] + got["std"], rtol=1e-5)
    assert torch.tensor(got["score"].to_numpy()).diff().le(0).all()


def test_uncertainty_ensemble_trains_members_into_one_file(train_tiny, test_molecules, tmp_path):
    from molgnn.predictor import load_models

    run = train_tiny("ens", "uncertainty=ensemble", "uncertainty.members=2")
    members = [run / "members" / str(i) / "checkpoints" / "best.ckpt" for i in (0, 1)]
    ensemble = run / "checkpoints" / "ensemble.ckpt"
    assert [m.path for m in load_models(ensemble)] == [f"{ensemble}[member 0]", f"{ensemble}[member 1]"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test/coverage90"] <= 1.0 and metrics["test/rmse"] > 0
    path, _ = test_molecules
    predict_file(ensemble, path, tmp_path / "one.csv", **PREDICT_FAST)
    predict_file([str(m) for m in members], path, tmp_path / "list.csv", **PREDICT_FAST)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "list.csv"))
    configs = [OmegaConf.load(run / "members" / str(i) / "config_resolved.yaml") for i in (0, 1)]
    assert [c.seed for c in configs] == [0, 1] and [c.split.seed for c in configs] == [0, 0]  # one split
