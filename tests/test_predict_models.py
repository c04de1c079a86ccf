"""molgnn-predict with several models or bad ones: ensembles, bundles, checkpoints that fail before any
output, the CLI's one-line error, two ranks sharding one file, a descriptor head. The models and the input
table are session fixtures in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molgnn.errors import CheckpointError, InputFileError
from molgnn.predict import parts_dir, predict_file
from molgnn.predictor import load_ensemble, load_predictor
from conftest import PREDICT_FAST as FAST, PREDICT_PLAIN as PLAIN, read_csv_out, write_smi


def test_ensemble_mean_and_std(predict_ckpt, predict_ckpt2, predict_table, tmp_path):
    singles = []
    for i, path in enumerate((predict_ckpt, predict_ckpt2)):
        predict_file(str(path), predict_table, tmp_path / f"s{i}.csv", **FAST)
        singles.append(read_csv_out(tmp_path / f"s{i}.csv")["logS"].to_numpy())
    assert not np.allclose(singles[0][~np.isnan(singles[0])], singles[1][~np.isnan(singles[1])])
    predict_file(
        [str(predict_ckpt), str(predict_ckpt2)], predict_table, tmp_path / "e.csv", chunk_rows=16, **FAST
    )
    got = pd.read_csv(tmp_path / "e.csv")
    assert list(got.columns) == ["id", "smiles", "logS_mean", "logS_std", "valid", "error"]
    stack = np.stack(singles)
    np.testing.assert_allclose(got["logS_mean"], stack.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["logS_std"], stack.std(axis=0), rtol=1e-4, atol=1e-5)


def test_bundle_predicts_every_head(predict_ckpt, predict_ckpt2, predict_table, tmp_path):
    from molgnn.transfer import bundle_checkpoints

    bundle = bundle_checkpoints([predict_ckpt, predict_ckpt2], tmp_path / "b.pt", names=["first", "second"])
    assert load_predictor(bundle).columns == ["first/logS", "second/logS"]
    predict_file(str(bundle), predict_table, tmp_path / "b.csv", **FAST)
    got = pd.read_csv(tmp_path / "b.csv")
    for i, path in enumerate((predict_ckpt, predict_ckpt2)):
        predict_file(str(path), predict_table, tmp_path / f"s{i}.csv", **FAST)
        expected = read_csv_out(tmp_path / f"s{i}.csv")["logS"]
        np.testing.assert_allclose(got[["first/logS", "second/logS"][i]], expected, rtol=1e-5, atol=1e-6)


def _bad_checkpoints(predict_ckpt: Path, tmp: Path) -> dict[str, Path]:
    from molgnn.checkpoint import export_encoder, load_encoder

    files = {
        "truncated": tmp / "trunc.ckpt",
        "text": tmp / "notes.ckpt",
        "encoder": tmp / "enc.pt",
        "plain": tmp / "plain.pt",
        "missing": tmp / "nope.ckpt",
        "keys": tmp / "keys.ckpt",
    }
    files["truncated"].write_bytes(predict_ckpt.read_bytes()[:5000])
    files["text"].write_text("hello")
    export_encoder(load_encoder(predict_ckpt), files["encoder"])
    torch.save({"weight": torch.zeros(2)}, files["plain"])
    blob = torch.load(predict_ckpt, weights_only=True)
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if not k.startswith("head.")}
    torch.save(blob, files["keys"])
    return files


def test_bad_checkpoints_fail_clearly_before_any_output(predict_ckpt, predict_ckpt2, predict_table, tmp_path):
    for kind, path in _bad_checkpoints(predict_ckpt, tmp_path).items():
        out = tmp_path / f"{kind}.csv"
        with pytest.raises(CheckpointError) as err:
            predict_file(str(path), predict_table, out, **FAST)
        assert str(path.name) in str(err.value), kind
        assert not out.exists() and not parts_dir(out).exists(), kind
    with pytest.raises(InputFileError, match="no column 'SMILES'"):
        predict_file(str(predict_ckpt), predict_table, tmp_path / "x.csv", smiles_col="SMILES", **FAST)
    assert not (tmp_path / "x.csv").exists() and not parts_dir(tmp_path / "x.csv").exists()


def test_ensemble_members_must_share_the_featurizer(predict_ckpt, tmp_path):
    blob = torch.load(predict_ckpt, weights_only=True)
    blob["molgnn"]["spec"]["atom_features"][1]["values"] = [0, 1, 2, 3, 4, 5, 8]  # same size, other values
    other = tmp_path / "other.ckpt"
    torch.save(blob, other)
    with pytest.raises(CheckpointError, match=r"featurizer spec differs.*degree"):
        load_ensemble([predict_ckpt, other])


@pytest.mark.slow
def test_cli_one_line_error_for_corrupt_checkpoint(predict_table, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage" * 10)
    out = tmp_path / "p.csv"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "molgnn.cli.predict",
            f"ckpt_path={bad}",
            f"input.path={predict_table}",
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
def test_two_ranks_shard_and_merge_in_input_order(predict_ckpt, predict_table, tmp_path):
    ref = tmp_path / "ref.csv"
    predict_file(str(predict_ckpt), predict_table, ref, chunk_rows=8, **FAST)
    out = tmp_path / "sharded.csv"
    args = [
        sys.executable,
        "-m",
        "molgnn.cli.predict",
        f"ckpt_path={predict_ckpt}",
        f"input.path={predict_table}",
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
    src = write_smi(tmp_path / "t.smi", ref["smiles"])
    predict_file(
        str(run / "checkpoints" / "best.ckpt"), src, tmp_path / "p.csv", progress=False, num_workers=2
    )
    np.testing.assert_allclose(
        pd.read_csv(tmp_path / "p.csv")["logS"], ref["logS_pred"], rtol=1e-4, atol=1e-4
    )
