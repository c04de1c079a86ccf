"""MiniMol inside molgnn-train: a frozen head trains and the featurizer spec travels to molgnn-predict,
fine-tuning moves the imported weights, and forked featurization workers do not hang. The weights come from
the minimol wheel (`pip install --no-deps minimol==1.3.5`, done by `make setup`); tests that need them skip,
saying so, when it is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ESOL_CSV_QUIET
from molgnn.checkpoint import safe_load
from molgnn.featurize.minimol import minimol_spec
from molgnn.transfer import load_foreign_encoder

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("minimol") is None,
    reason="MiniMol weights not installed: pip install --no-deps minimol==1.3.5",
)


@pytest.mark.slow
@needs_weights
def test_frozen_head_trains_and_spec_travels(compose, tmp_path):
    from hydra.utils import instantiate

    from molgnn.checkpoint import build_encoder
    from molgnn.cli.train import train

    assert instantiate(compose("train", ["encoder=minimol"]).encoder).spec == minimol_spec()
    cfg = compose(
        "train",
        [
            "encoder=minimol",
            "task.freeze_encoder=true",
            "task.precompute_embeddings=true",
            *ESOL_CSV_QUIET,
            "trainer.max_epochs=2",
        ],
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["epochs"] == 2 and np.isfinite(metrics["test/rmse"])
    header = safe_load(tmp_path / "run" / "checkpoints" / "last.ckpt")["molgnn"]
    assert header["encoder"]["family"] == "minimol" and header["spec"]["engine"] == "graphium"
    assert build_encoder(header).spec == minimol_spec()
    from molgnn.predict import predict_file

    smi = tmp_path / "new.smi"
    smi.write_text("CCO\nc1ccccc1O\nnot_a_smiles\n")
    predict_file(
        str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
        smi,
        tmp_path / "p.csv",
        num_workers=0,
        progress=False,
    )
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 3 and pred["valid"].tolist() == [True, True, False]
    assert np.isfinite(pred["logS"][:2]).all()


@pytest.mark.slow
@needs_weights
def test_fine_tuning_moves_the_pretrained_weights(compose, tmp_path):
    from molgnn.cli.train import train

    cfg = compose("train", ["encoder=minimol", *ESOL_CSV_QUIET, "trainer.max_epochs=1", "uncertainty=none"])
    assert train(cfg, tmp_path / "run")["epochs"] == 1
    tuned = safe_load(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    start = load_foreign_encoder("minimol", "installed").state_dict()
    assert not torch.equal(
        tuned["encoder.gnn.layers.0.model.lin.weight"], start["gnn.layers.0.model.lin.weight"]
    )


@pytest.mark.slow
def test_parallel_featurization_does_not_hang(tmp_path):
    """Forked workers (2,000+ rows) featurize MiniMol graphs without torch (its MKL pool deadlocks after a
    fork) and give what one process gives."""
    code = (
        "import torch, pandas as pd; torch.set_num_threads(2); torch.randn(800, 800) @ torch.randn(800, 800)\n"
        "from molgnn.data.graphs import featurize_smiles\n"
        "from molgnn.featurize.minimol import minimol_spec\n"
        "sm = pd.read_csv('data/moleculenet/lipophilicity.csv').smiles.tolist()[:2000]\n"
        "a = featurize_smiles(sm, minimol_spec(), num_workers=2)\n"
        "b = featurize_smiles(sm, minimol_spec(), num_workers=0)\n"
        "assert torch.equal(a.graphs.x, b.graphs.x) and len(a.graphs) == 2000\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=300, cwd=Path(__file__).resolve().parents[1]
    )
