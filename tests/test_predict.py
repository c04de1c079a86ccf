"""molgnn-predict on one model: every row kept in order, target columns, input/output formats, resume after
an interrupt or a kill, empty inputs (ensembles, bundles, bad checkpoints, sharding: test_predict_models.py).
The model and the input table are session fixtures in conftest.py."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgnn.errors import MolgnnError
from molgnn.predict import parts_dir, predict_file
from molgnn.predictor import load_predictor
from conftest import PREDICT_FAST as FAST, read_csv_out, write_smi
from conftest import PREDICT_INVALID as INVALID

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def test_rows_kept_in_order_with_invalid_rows_and_values_match_training(
    predict_run, predict_ckpt, predict_table, tmp_path
):
    out = tmp_path / "p.csv"
    summary = predict_file(str(predict_ckpt), predict_table, out, chunk_rows=16, batch_size=7, **FAST)
    got, source = read_csv_out(out), pd.read_csv(predict_table, dtype=str, keep_default_na=False)
    assert list(got.columns) == ["id", "smiles", "logS", "valid", "error"]
    assert got["id"].tolist() == source["id"].tolist() and got["smiles"].tolist() == source["smiles"].tolist()
    bad = got["smiles"].isin(INVALID)
    assert (~got.loc[bad, "valid"]).all() and got.loc[bad, "logS"].isna().all()
    assert (got.loc[bad, "error"] != "").all() and (got.loc[~bad, "error"] == "").all()
    assert got.loc[~bad, "valid"].all() and got.loc[~bad, "logS"].notna().all()
    assert (summary.output_rows, summary.output_valid) == (65, 60)
    assert not parts_dir(out).exists()
    # the training run's own test-set predictions (best.ckpt) are reproduced to float precision
    ref = pd.read_csv(predict_run / "test_predictions.csv")
    pred = predict_file(
        str(predict_ckpt), write_smi(tmp_path / "t.smi", ref["smiles"]), tmp_path / "t.csv", **FAST
    )
    assert pred.output_rows == len(ref)
    np.testing.assert_allclose(
        read_csv_out(tmp_path / "t.csv")["logS"], ref["logS_pred"], rtol=1e-5, atol=1e-5
    )


def test_worker_pool_gives_the_same_file(predict_ckpt, predict_table, tmp_path):
    predict_file(str(predict_ckpt), predict_table, tmp_path / "a.csv", chunk_rows=16, **FAST)
    predict_file(
        str(predict_ckpt), predict_table, tmp_path / "b.csv", chunk_rows=16, progress=False, num_workers=2
    )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_target_names_become_columns_and_clashing_input_columns_are_renamed(predict_ckpt, tmp_path):
    predictor = load_predictor(predict_ckpt)
    assert predictor.columns == ["logS"]
    out = tmp_path / "p.csv"
    predict_file(str(predict_ckpt), FIXTURES / "esol_small.csv", out, **FAST)
    got = pd.read_csv(out)
    assert list(got.columns) == ["smiles", "logS_input", "logS", "valid", "error"] and len(got) == 120


def test_smi_gz_tsv_inputs_and_parquet_output(predict_ckpt, predict_table, tmp_path):
    frame = pd.read_csv(predict_table, dtype=str, keep_default_na=False)
    ref = tmp_path / "ref.csv"
    predict_file(str(predict_ckpt), predict_table, ref, **FAST)
    expected = read_csv_out(ref)
    smi = write_smi(
        tmp_path / "m.smi", frame["smiles"].replace("", "."), frame["id"]
    )  # "" is no line in .smi
    with open(predict_table, "rb") as src, gzip.open(tmp_path / "m.csv.gz", "wb") as dst:
        dst.write(src.read())
    with gzip.open(tmp_path / "m.smi.gz", "wt") as dst:
        dst.write(smi.read_text())
    frame.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    for name in ("m.csv.gz", "m.tsv", "m.smi", "m.smi.gz"):
        out = tmp_path / f"{name}.out.csv"
        predict_file(str(predict_ckpt), tmp_path / name, out, chunk_rows=9, **FAST)
        got = read_csv_out(out)
        assert len(got) == len(frame), name
        assert got["id"].tolist() == frame["id"].tolist(), name
        np.testing.assert_allclose(got["logS"], expected["logS"], rtol=1e-6, err_msg=name)
    pq_out = tmp_path / "p.parquet"
    predict_file(str(predict_ckpt), predict_table, pq_out, chunk_rows=16, **FAST)
    got = pd.read_parquet(pq_out)
    assert got["id"].tolist() == frame["id"].tolist() and got["valid"].dtype == bool
    np.testing.assert_allclose(got["logS"], expected["logS"], rtol=1e-6)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(pq_out).metadata.num_row_groups == 5  # one row group per chunk


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_interrupted_run_resumes_to_the_same_file(predict_ckpt, predict_table, tmp_path, suffix, monkeypatch):
    full, out = tmp_path / f"full.{suffix}", tmp_path / f"resumed.{suffix}"
    predict_file(str(predict_ckpt), predict_table, full, chunk_rows=10, **FAST)
    with monkeypatch.context() as patch:
        _stop_after_chunks(patch, 3)
        with pytest.raises(RuntimeError, match="stopped after 3 chunk"):
            predict_file(str(predict_ckpt), predict_table, out, chunk_rows=10, **FAST)
    assert not out.exists() and len(list(parts_dir(out).glob(f"chunk-*.{suffix}"))) == 3
    with pytest.raises(MolgnnError, match="chunk_rows changed"):
        predict_file(str(predict_ckpt), predict_table, out, chunk_rows=20, resume=True, **FAST)
    summary = predict_file(str(predict_ckpt), predict_table, out, chunk_rows=10, resume=True, **FAST)
    assert summary.rows == 35 and summary.output_rows == 65  # 3 chunks of 10 kept, 35 rows predicted
    if suffix == "csv":
        assert out.read_bytes() == full.read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(full))


def _stop_after_chunks(monkeypatch, n: int) -> None:
    """Make predict_file raise once it has committed ``n`` chunks, like a run killed there."""
    import molgnn.predict.driver as driver

    real, committed = driver.write_chunk, []

    def write_chunk(*args, **kwargs):
        real(*args, **kwargs)
        committed.append(args[1])
        if len(committed) >= n:
            raise RuntimeError(f"stopped after {len(committed)} chunk(s)")

    monkeypatch.setattr(driver, "write_chunk", write_chunk)


@pytest.mark.slow
def test_killed_process_resumes_without_lost_or_duplicated_rows(predict_ckpt, tmp_path):
    smiles = pd.read_csv(ROOT / "data" / "moleculenet" / "lipophilicity.csv")["smiles"].tolist()
    src = write_smi(tmp_path / "lipo.smi", smiles, range(len(smiles)))
    out = tmp_path / "p.csv"
    args = [
        sys.executable,
        "-m",
        "molgnn.cli.predict",
        f"ckpt_path={predict_ckpt}",
        f"input.path={src}",
        f"output_path={out}",
        "chunk_rows=200",
        "batch_size=50",
        "num_workers=1",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'h'}",
    ]
    proc = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not list(parts_dir(out).glob("chunk-*.csv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = len(list(parts_dir(out).glob("chunk-*.csv")))
    assert not out.exists() and 0 < committed < len(smiles) / 200
    subprocess.run([*args, "resume=true"], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    got = pd.read_csv(out, dtype={"id": str})
    assert got["id"].tolist() == [str(i) for i in range(len(smiles))] and got["valid"].all()
    predict_file(str(predict_ckpt), src, tmp_path / "ref.csv", chunk_rows=200, batch_size=50, **FAST)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()


@pytest.mark.parametrize("name,text", [("h.csv", "smiles,id\n"), ("e.smi", "")])
def test_empty_inputs_give_a_header_only_output(predict_ckpt, tmp_path, name, text):
    (tmp_path / name).write_text(text)
    for out in (tmp_path / "p.csv", tmp_path / "p.parquet"):
        assert predict_file(str(predict_ckpt), tmp_path / name, out, **FAST).output_rows == 0
    assert (tmp_path / "p.csv").read_text().startswith("smiles,id,logS,valid,error")
    assert list(pd.read_parquet(tmp_path / "p.parquet").columns) == ["smiles", "id", "logS", "valid", "error"]
