"""Transfer, after training: bundles of heads, embedding export, and refusing unsafe or broken files (the
runs are the session fixture ``transfer_runs`` in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from molgnn.checkpoint import export_encoder, load_encoder, safe_load
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.graph import smiles_to_graph
from molgnn.nn.hu2020 import Hu2020GCN
from molgnn.predictor import load_predictor
from molgnn.transfer import bundle_checkpoints, load_foreign_encoder

FIXTURES = Path(__file__).parent / "fixtures"
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCCCCCCC(=O)O", "ClC(Cl)Cl"]


def _predict(model, smiles: list[str]) -> torch.Tensor:
    """``Predictor.predict_batch``: every head's predictions in original units."""
    return model.predict_batch(Batch.from_data_list([smiles_to_graph(s, model.spec) for s in smiles]))


@pytest.mark.slow
def test_bundle_of_two_heads_predicts_what_each_head_predicts_alone(transfer_runs, tmp_path):
    ckpts = [transfer_runs["dir"] / n / "checkpoints" / "best.ckpt" for n in ("frozen", "second")]
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
    test = pd.read_csv(transfer_runs["dir"] / "frozen" / "test_predictions.csv")
    assert np.allclose(_predict(bundle, test.smiles.tolist())[:, 0].numpy(), test.logS_pred, atol=1e-5)


@pytest.mark.slow
def test_bundle_refuses_a_head_trained_on_another_encoder(transfer_runs, tmp_path):
    other = transfer_runs["dir"] / "finetuned" / "checkpoints" / "best.ckpt"
    with pytest.raises(
        CheckpointError, match=rf"{other}: head 'solubility' was trained on encoder \w+, not on the "
    ):
        bundle_checkpoints(
            [transfer_runs["dir"] / "frozen" / "checkpoints" / "best.ckpt", other], tmp_path / "b.pt"
        )
    with pytest.raises(MolgnnError, match="two heads are named 'solubility'"):
        bundle_checkpoints(
            [transfer_runs["dir"] / "frozen" / "checkpoints" / "best.ckpt"] * 2, tmp_path / "b.pt"
        )
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
def test_bundle_cli(transfer_runs, tmp_path):
    a, b = (transfer_runs["dir"] / n / "checkpoints" / "best.ckpt" for n in ("frozen", "second"))
    proc = _cli(
        "molgnn.cli.bundle", f"heads=[{a},{b}]", "names=[solubility,other]", "output=props.pt", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_predictor(tmp_path / "props.pt").qualified_columns == ["solubility/logS", "other/y2"]
    c = transfer_runs["dir"] / "finetuned" / "checkpoints" / "best.ckpt"
    proc = _cli("molgnn.cli.bundle", f"heads=[{a},{c}]", "output=bad.pt", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"molgnn-bundle: error: {c}: head 'solubility' was trained on")
    )


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_embed_keeps_every_row_in_order(transfer_runs, tmp_path, fmt):
    """molgnn-embed end to end for .npy; the same functions in-process for .parquet (saves a start-up)."""
    src = FIXTURES / "esol_bad_rows.csv"
    if fmt == "npy":
        proc = _cli(
            "molgnn.cli.embed",
            f"input={src}",
            f"checkpoint={transfer_runs['encoder']}",
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
            embed_smiles(load_encoder(transfer_runs["encoder"]), smiles, batch_size=7, chunk_rows=25),
            names,
            tmp_path / "emb.parquet",
        )
        ids = pd.read_parquet(tmp_path / "emb.parquet")
        values = np.stack([v if v is not None else np.full(32, np.nan) for v in ids.embedding])
    smiles = pd.read_csv(src).smiles.tolist()
    assert values.shape == (len(smiles), 32) and ids.row.tolist() == list(range(len(smiles)))
    invalid = [r for r in range(len(smiles)) if not ids.valid[r]]
    assert invalid and all(np.isnan(values[r]).all() for r in invalid) and ids.reason[invalid[0]]
    encoder = load_encoder(transfer_runs["encoder"]).eval()
    good = [r for r in range(len(smiles)) if ids.valid[r]]
    with torch.no_grad():
        expected = encoder(Batch.from_data_list([smiles_to_graph(smiles[r], encoder.spec) for r in good]))
    assert np.allclose(values[good], expected.numpy(), atol=1e-5)


class _Payload:
    """Unpickling this transfer_runs a shell command: the attack weights_only=True must stop."""

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
def test_bundle_refuses_a_head_with_another_featurizer_spec(transfer_runs, tmp_path):
    good = transfer_runs["dir"] / "frozen" / "checkpoints" / "best.ckpt"
    blob = safe_load(transfer_runs["dir"] / "second" / "checkpoints" / "best.ckpt")
    blob["molgnn"]["spec"]["version"] = 7  # same weights, other featurization: must not be mixed
    torch.save(blob, tmp_path / "other_spec.ckpt")
    with pytest.raises(
        CheckpointError, match=r"other_spec.ckpt: featurizer spec differs from .*version: 1 != 7"
    ):
        bundle_checkpoints([good, tmp_path / "other_spec.ckpt"], tmp_path / "b.pt")
