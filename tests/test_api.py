"""The Python API: molgnn.train from Python, molgnn.load(...).predict equal to molgnn-predict's output (same
columns, numbers and invalid rows) for lists, Series and DataFrames, embed, ensembles; `import molgnn` light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CALIBRATED_COLUMNS, FIXTURES, ROOT, TINY_ESOL

import molgnn
from molgnn.errors import MolgnnError
from molgnn.predict import predict_file

SMILES = pd.read_csv(FIXTURES / "esol_small.csv")["smiles"].head(6).tolist()
SMILES.insert(2, "not_a_smiles")  # one invalid row, in the middle
INVALID = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[tuple[dict, Path]]:
    """Two tiny runs trained through molgnn.train in one process (seeds 0 and 1): (metrics, best.ckpt)."""
    out = []
    for seed in (0, 1):
        tmp = tmp_path_factory.mktemp(f"api{seed}")
        metrics = molgnn.train(
            overrides=[*TINY_ESOL, f"paths.cache_dir={tmp / 'cache'}", f"seed={seed}"], output_dir=tmp / "out"
        )
        out.append((metrics, tmp / "out" / "checkpoints" / "best.ckpt"))
    return out


def cli_output(ckpt, smiles: list[str], tmp_path: Path, **kwargs) -> pd.DataFrame:
    """What molgnn-predict writes for these SMILES (as a CSV input), read back."""
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(src, index=False)
    predict_file(ckpt, src, dst, progress=False, num_workers=0, **kwargs)
    return pd.read_csv(dst)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV round trip aside (empty error -> NaN, in_domain True/False/empty): the same values as floats/text."""
    frame = frame.reset_index(drop=True).copy()
    frame["error"] = frame["error"].fillna("")
    if "in_domain" in frame:
        frame["in_domain"] = (
            frame["in_domain"].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}).astype(float)
        )
    return frame


def assert_same(api: pd.DataFrame, cli: pd.DataFrame) -> None:
    assert list(api.columns) == list(cli.columns)
    pd.testing.assert_frame_equal(comparable(api), comparable(cli), check_dtype=False, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_train_from_python_returns_the_metrics_and_writes_the_checkpoint(runs):
    for metrics, ckpt in runs:
        assert np.isfinite(metrics["test/rmse"]) and metrics["test/rmse"] > 0
        assert ckpt.exists()
    assert runs[0][0]["test/rmse"] != runs[1][0]["test/rmse"]  # the second call composed its own seed


@pytest.mark.slow
def test_predict_a_list_equals_molgnn_predict(runs, tmp_path):
    model = molgnn.load(runs[0][1])
    assert model.targets == ["logS"] and model.spec is not None
    api = model.predict(SMILES)
    assert list(api.columns) == ["smiles", *CALIBRATED_COLUMNS, "valid", "error"]
    assert api["valid"].tolist() == [i != INVALID for i in range(len(SMILES))]
    assert api.loc[INVALID, "error"] and api.loc[INVALID, CALIBRATED_COLUMNS[:-1]].isna().all()
    assert api.drop(index=INVALID)[CALIBRATED_COLUMNS[:-1]].notna().all().all()
    assert_same(api, cli_output(runs[0][1], SMILES, tmp_path))
    plain = model.predict(SMILES, uncertainty=False, interval_level=0.5)
    assert list(plain.columns) == ["smiles", "logS", "valid", "error"]
    np.testing.assert_allclose(plain["logS"], api["logS"], rtol=1e-6)
    workers = model.predict(SMILES, num_workers=2)  # each worker featurizes and predicts its jobs
    pd.testing.assert_frame_equal(workers, api)


@pytest.mark.slow
def test_predict_keeps_a_dataframes_columns_and_index_and_takes_a_series(runs, tmp_path):
    model = molgnn.load(str(runs[0][1]))
    frame = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(len(SMILES))],
            "SMILES": SMILES,
            "measured": np.arange(len(SMILES), dtype=float),
        },
        index=range(10, 10 + len(SMILES)),
    )
    out = model.predict(frame, smiles_col="SMILES", interval_level=0.8)
    assert list(out.columns) == ["id", "SMILES", "measured", *CALIBRATED_COLUMNS, "valid", "error"]
    assert out.index.tolist() == frame.index.tolist()
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    assert_same(
        out.drop(columns=["id", "measured"]).rename(columns={"SMILES": "smiles"}),
        cli_output(runs[0][1], SMILES, tmp_path, interval_level=0.8),
    )
    series = model.predict(pd.Series(SMILES, index=frame.index), interval_level=0.8)
    pd.testing.assert_frame_equal(
        series.drop(columns="smiles"), out.drop(columns=["id", "SMILES", "measured"])
    )
    with pytest.raises(MolgnnError, match="no column 'smi'"):
        model.predict(frame, smiles_col="smi")
    assert model.predict([]).columns.tolist() == ["smiles", *CALIBRATED_COLUMNS, "valid", "error"]


@pytest.mark.slow
def test_embed_gives_one_row_per_smiles_and_nan_for_the_invalid(runs):
    emb = molgnn.load(runs[0][1]).embed(SMILES)
    assert emb.shape == (len(SMILES), 32) and emb.dtype == np.float32
    assert np.isnan(emb[INVALID]).all() and np.isfinite(np.delete(emb, INVALID, axis=0)).all()


def test_an_encoder_file_loads_for_embeddings_and_refuses_to_predict():
    from molgnn.checkpoint import load_encoder
    from molgnn.transfer import embed_smiles

    path = ROOT / "models" / "pretrained" / "dmpnn_all200k.pt"
    model = molgnn.load(path)
    assert model.targets == [] and model.models == []
    emb = model.embed(SMILES)
    ref = embed_smiles(load_encoder(path), SMILES).values
    assert emb.shape == (len(SMILES), model.encoder.out_dim)
    np.testing.assert_array_equal(emb, ref)
    with pytest.raises(MolgnnError, match="dmpnn_all200k.pt: an encoder file has no property heads"):
        model.predict(SMILES)


@pytest.mark.slow
def test_an_ensemble_predicts_mean_and_spread_like_molgnn_predict(runs, tmp_path):
    ckpts = [ckpt for _, ckpt in runs]
    api = molgnn.load(ckpts).predict(SMILES)
    assert api.columns[1:3].tolist() == ["logS_mean", "logS_std"]
    assert_same(api, cli_output(ckpts, SMILES, tmp_path))


def test_bad_override_raises_instead_of_exiting(tmp_path):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with pytest.raises((HydraException, OmegaConfBaseException)):
        molgnn.train(overrides=["no_such_key=1"], output_dir=tmp_path)
    with pytest.raises(HydraException):
        molgnn.train(overrides=["encoder=no_such_encoder"], output_dir=tmp_path)


def test_import_molgnn_stays_light():
    code = "import sys, molgnn; print(callable(molgnn.load), 'torch' in sys.modules, 'hydra' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False", "False"]
