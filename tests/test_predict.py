"""molgnn-predict: every row kept in order, target columns, resume after a kill, ensembles, bundles, bad
checkpoints, input/output formats, sharding + merge with two processes."""

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
import torch

from molgnn.errors import CheckpointError, InputFileError, MolgnnError
from molgnn.predict import parts_dir, predict_file
from molgnn.predictor import load_ensemble, load_predictor

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
INVALID = ["not_a_smiles", "", "C1CC", "c1ccccc1(", "[Xx]"]
FAST = dict(progress=False, num_workers=0)
# models here are uncalibrated (uncertainty=none): their columns; calibrated outputs: test_uncertainty_predict.py
PLAIN = "uncertainty=none"


@pytest.fixture(scope="session")
def run(train_tiny) -> Path:
    """A tiny molgnn-train run (D-MPNN, 1 epoch on 120 ESOL rows): checkpoints/best.ckpt + test predictions."""
    return train_tiny("train", PLAIN)


@pytest.fixture(scope="session")
def ckpt(run) -> Path:
    return run / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def ckpt2(ckpt, tmp_path_factory) -> Path:
    """A second model: same encoder, head weights perturbed (a different member for ensembles/bundles)."""
    blob = torch.load(ckpt, weights_only=True)
    gen = torch.Generator().manual_seed(1)
    for key, value in blob["state_dict"].items():
        if key.startswith("head.") and value.is_floating_point():
            blob["state_dict"][key] = value + 0.3 * torch.randn(value.shape, generator=gen)
    path = tmp_path_factory.mktemp("ckpt2") / "second.ckpt"
    torch.save(blob, path)
    return path


@pytest.fixture(scope="session")
def table(tmp_path_factory) -> Path:
    """ESOL rows with invalid SMILES mixed in, and an id column carried through."""
    frame = pd.read_csv(FIXTURES / "esol_small.csv", dtype=str, keep_default_na=False).head(60)
    rows = frame["smiles"].tolist()
    for i, bad in enumerate(INVALID):
        rows.insert(7 + 11 * i, bad)
    path = tmp_path_factory.mktemp("in") / "mols.csv"
    pd.DataFrame({"id": [f"m{i}" for i in range(len(rows))], "smiles": rows}).to_csv(path, index=False)
    return path


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path, dtype={"id": str, "smiles": str, "error": str}, keep_default_na=False, na_values={"logS": [""]}
    )


def test_rows_kept_in_order_with_invalid_rows_and_values_match_training(run, ckpt, table, tmp_path):
    out = tmp_path / "p.csv"
    summary = predict_file(str(ckpt), table, out, chunk_rows=16, batch_size=7, **FAST)
    got, source = _csv(out), pd.read_csv(table, dtype=str, keep_default_na=False)
    assert list(got.columns) == ["id", "smiles", "logS", "valid", "error"]
    assert got["id"].tolist() == source["id"].tolist() and got["smiles"].tolist() == source["smiles"].tolist()
    bad = got["smiles"].isin(INVALID)
    assert (~got.loc[bad, "valid"]).all() and got.loc[bad, "logS"].isna().all()
    assert (got.loc[bad, "error"] != "").all() and (got.loc[~bad, "error"] == "").all()
    assert got.loc[~bad, "valid"].all() and got.loc[~bad, "logS"].notna().all()
    assert (summary.output_rows, summary.output_valid) == (65, 60)
    assert not parts_dir(out).exists()
    # the training run's own test-set predictions (best.ckpt) are reproduced to float precision
    ref = pd.read_csv(run / "test_predictions.csv")
    pred = predict_file(str(ckpt), _write(tmp_path / "t.smi", ref["smiles"]), tmp_path / "t.csv", **FAST)
    assert pred.output_rows == len(ref)
    np.testing.assert_allclose(_csv(tmp_path / "t.csv")["logS"], ref["logS_pred"], rtol=1e-5, atol=1e-5)


def _write(path: Path, smiles, ids=None) -> Path:
    lines = [f"{s} {i}" if ids is not None else s for s, i in zip(smiles, ids if ids is not None else smiles)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_worker_pool_gives_the_same_file(ckpt, table, tmp_path):
    predict_file(str(ckpt), table, tmp_path / "a.csv", chunk_rows=16, **FAST)
    predict_file(str(ckpt), table, tmp_path / "b.csv", chunk_rows=16, progress=False, num_workers=2)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_target_names_become_columns_and_clashing_input_columns_are_renamed(ckpt, tmp_path):
    predictor = load_predictor(ckpt)
    assert predictor.columns == ["logS"]
    out = tmp_path / "p.csv"
    predict_file(str(ckpt), FIXTURES / "esol_small.csv", out, **FAST)
    got = pd.read_csv(out)
    assert list(got.columns) == ["smiles", "logS_input", "logS", "valid", "error"] and len(got) == 120


def test_smi_gz_tsv_inputs_and_parquet_output(ckpt, table, tmp_path):
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    ref = tmp_path / "ref.csv"
    predict_file(str(ckpt), table, ref, **FAST)
    expected = _csv(ref)
    smi = _write(tmp_path / "m.smi", frame["smiles"].replace("", "."), frame["id"])  # "" is no line in .smi
    with open(table, "rb") as src, gzip.open(tmp_path / "m.csv.gz", "wb") as dst:
        dst.write(src.read())
    with gzip.open(tmp_path / "m.smi.gz", "wt") as dst:
        dst.write(smi.read_text())
    frame.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    for name in ("m.csv.gz", "m.tsv", "m.smi", "m.smi.gz"):
        out = tmp_path / f"{name}.out.csv"
        predict_file(str(ckpt), tmp_path / name, out, chunk_rows=9, **FAST)
        got = _csv(out)
        assert len(got) == len(frame), name
        assert got["id"].tolist() == frame["id"].tolist(), name
        np.testing.assert_allclose(got["logS"], expected["logS"], rtol=1e-6, err_msg=name)
    pq_out = tmp_path / "p.parquet"
    predict_file(str(ckpt), table, pq_out, chunk_rows=16, **FAST)
    got = pd.read_parquet(pq_out)
    assert got["id"].tolist() == frame["id"].tolist() and got["valid"].dtype == bool
    np.testing.assert_allclose(got["logS"], expected["logS"], rtol=1e-6)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(pq_out).metadata.num_row_groups == 5  # one row group per chunk


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_interrupted_run_resumes_to_the_same_file(ckpt, table, tmp_path, suffix, monkeypatch):
    full, out = tmp_path / f"full.{suffix}", tmp_path / f"resumed.{suffix}"
    predict_file(str(ckpt), table, full, chunk_rows=10, **FAST)
    with monkeypatch.context() as patch:
        _stop_after_chunks(patch, 3)
        with pytest.raises(RuntimeError, match="stopped after 3 chunk"):
            predict_file(str(ckpt), table, out, chunk_rows=10, **FAST)
    assert not out.exists() and len(list(parts_dir(out).glob(f"chunk-*.{suffix}"))) == 3
    with pytest.raises(MolgnnError, match="chunk_rows changed"):
        predict_file(str(ckpt), table, out, chunk_rows=20, resume=True, **FAST)
    summary = predict_file(str(ckpt), table, out, chunk_rows=10, resume=True, **FAST)
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
def test_killed_process_resumes_without_lost_or_duplicated_rows(ckpt, tmp_path):
    smiles = pd.read_csv(ROOT / "data" / "moleculenet" / "lipophilicity.csv")["smiles"].tolist()
    src = _write(tmp_path / "lipo.smi", smiles, range(len(smiles)))
    out = tmp_path / "p.csv"
    args = [
        sys.executable,
        "-m",
        "molgnn.cli.predict",
        f"ckpt_path={ckpt}",
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
    predict_file(str(ckpt), src, tmp_path / "ref.csv", chunk_rows=200, batch_size=50, **FAST)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_ensemble_mean_and_std(ckpt, ckpt2, table, tmp_path):
    singles = []
    for i, path in enumerate((ckpt, ckpt2)):
        predict_file(str(path), table, tmp_path / f"s{i}.csv", **FAST)
        singles.append(_csv(tmp_path / f"s{i}.csv")["logS"].to_numpy())
    assert not np.allclose(singles[0][~np.isnan(singles[0])], singles[1][~np.isnan(singles[1])])
    predict_file([str(ckpt), str(ckpt2)], table, tmp_path / "e.csv", chunk_rows=16, **FAST)
    got = pd.read_csv(tmp_path / "e.csv")
    assert list(got.columns) == ["id", "smiles", "logS_mean", "logS_std", "valid", "error"]
    stack = np.stack(singles)
    np.testing.assert_allclose(got["logS_mean"], stack.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["logS_std"], stack.std(axis=0), rtol=1e-4, atol=1e-5)


def test_bundle_predicts_every_head(ckpt, ckpt2, table, tmp_path):
    from molgnn.transfer import bundle_checkpoints

    bundle = bundle_checkpoints([ckpt, ckpt2], tmp_path / "b.pt", names=["first", "second"])
    assert load_predictor(bundle).columns == ["first/logS", "second/logS"]
    predict_file(str(bundle), table, tmp_path / "b.csv", **FAST)
    got = pd.read_csv(tmp_path / "b.csv")
    for i, path in enumerate((ckpt, ckpt2)):
        predict_file(str(path), table, tmp_path / f"s{i}.csv", **FAST)
        expected = _csv(tmp_path / f"s{i}.csv")["logS"]
        np.testing.assert_allclose(got[["first/logS", "second/logS"][i]], expected, rtol=1e-5, atol=1e-6)


def _bad_checkpoints(ckpt: Path, tmp: Path) -> dict[str, Path]:
    from molgnn.checkpoint import export_encoder, load_encoder

    files = {
        "truncated": tmp / "trunc.ckpt",
        "text": tmp / "notes.ckpt",
        "encoder": tmp / "enc.pt",
        "plain": tmp / "plain.pt",
        "missing": tmp / "nope.ckpt",
        "keys": tmp / "keys.ckpt",
    }
    files["truncated"].write_bytes(ckpt.read_bytes()[:5000])
    files["text"].write_text("hello")
    export_encoder(load_encoder(ckpt), files["encoder"])
    torch.save({"weight": torch.zeros(2)}, files["plain"])
    blob = torch.load(ckpt, weights_only=True)
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if not k.startswith("head.")}
    torch.save(blob, files["keys"])
    return files


def test_bad_checkpoints_fail_clearly_before_any_output(ckpt, ckpt2, table, tmp_path):
    for kind, path in _bad_checkpoints(ckpt, tmp_path).items():
        out = tmp_path / f"{kind}.csv"
        with pytest.raises(CheckpointError) as err:
            predict_file(str(path), table, out, **FAST)
        assert str(path.name) in str(err.value), kind
        assert not out.exists() and not parts_dir(out).exists(), kind
    with pytest.raises(InputFileError, match="no column 'SMILES'"):
        predict_file(str(ckpt), table, tmp_path / "x.csv", smiles_col="SMILES", **FAST)
    assert not (tmp_path / "x.csv").exists() and not parts_dir(tmp_path / "x.csv").exists()


def test_ensemble_members_must_share_the_featurizer(ckpt, tmp_path):
    blob = torch.load(ckpt, weights_only=True)
    blob["molgnn"]["spec"]["atom_features"][1]["values"] = [0, 1, 2, 3, 4, 5, 8]  # same size, other values
    other = tmp_path / "other.ckpt"
    torch.save(blob, other)
    with pytest.raises(CheckpointError, match=r"featurizer spec differs.*degree"):
        load_ensemble([ckpt, other])


@pytest.mark.slow
def test_cli_one_line_error_for_corrupt_checkpoint(table, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage" * 10)
    out = tmp_path / "p.csv"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "molgnn.cli.predict",
            f"ckpt_path={bad}",
            f"input.path={table}",
            f"output_path={out}",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2, res.stderr
    assert (
        res.stderr.strip().splitlines()[-1].startswith("molgnn-predict: error: ") and "bad.ckpt" in res.stderr
    )
    assert not out.exists() and not parts_dir(out).exists()


@pytest.mark.slow
def test_two_ranks_shard_and_merge_in_input_order(ckpt, table, tmp_path):
    ref = tmp_path / "ref.csv"
    predict_file(str(ckpt), table, ref, chunk_rows=8, **FAST)
    out = tmp_path / "sharded.csv"
    args = [
        sys.executable,
        "-m",
        "molgnn.cli.predict",
        f"ckpt_path={ckpt}",
        f"input.path={table}",
        f"output_path={out}",
        "chunk_rows=8",
        "num_workers=0",
        "progress=false",
    ]
    procs = [
        subprocess.Popen(
            [*args, f"hydra.run.dir={tmp_path / f'h{r}'}"],
            env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"},
        )
        for r in (1, 0)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert out.read_bytes() == ref.read_bytes() and not parts_dir(out).exists()


@pytest.mark.slow
def test_descriptor_head_is_predicted_like_in_training(train_tiny, tmp_path):
    run = train_tiny("desc", PLAIN, "data.descriptors=true")
    predictor = load_predictor(run / "checkpoints" / "best.ckpt")
    assert predictor.needs_descriptors
    ref = pd.read_csv(run / "test_predictions.csv")
    src = _write(tmp_path / "t.smi", ref["smiles"])
    predict_file(
        str(run / "checkpoints" / "best.ckpt"), src, tmp_path / "p.csv", progress=False, num_workers=2
    )
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "p.csv")["logS"], ref["logS_pred"], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name,text", [("h.csv", "smiles,id\n"), ("e.smi", "")])
def test_empty_inputs_give_a_header_only_output(ckpt, tmp_path, name, text):
    (tmp_path / name).write_text(text)
    for out in (tmp_path / "p.csv", tmp_path / "p.parquet"):
        assert predict_file(str(ckpt), tmp_path / name, out, **FAST).output_rows == 0
    assert (tmp_path / "p.csv").read_text().startswith("smiles,id,logS,valid,error")
    assert list(pd.read_parquet(tmp_path / "p.parquet").columns) == ["smiles", "id", "logS", "valid", "error"]
