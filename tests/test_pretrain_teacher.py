"""Distillation pretraining: teacher embeddings aligned with the corpus rows (sampled, standardized, checked),
the TeacherDistillation objective, and a pretrain=distill run recording its teacher."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fit_objective
from rdkit import Chem

from molgnn.data.unlabeled import UnlabeledDataModule
from molgnn.errors import InputFileError, MolgnnError
from molgnn.featurize import default_spec
from molgnn.nn import DMPNNEncoder
from molgnn.tasks.pretrain import PretrainContext, TeacherDistillation

SPEC = default_spec()


def _heavy_atoms(smiles: str) -> int:
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


@pytest.fixture
def corpus_smiles(fixtures):
    return pd.read_csv(fixtures / "pretrain_200.csv").SMILES.tolist()


@pytest.fixture
def teacher_file(corpus_smiles, tmp_path):
    """Column 0: heavy atoms of the row's molecule; column 1: the row number; column 2: constant."""
    values = np.array([[_heavy_atoms(s), i, 7.0] for i, s in enumerate(corpus_smiles)], dtype=np.float32)
    np.save(tmp_path / "teacher.npy", values)
    return tmp_path / "teacher.npy"


def _module(fixtures, tmp_path, teacher, **kw):
    dm = UnlabeledDataModule(
        fixtures / "pretrain_200.csv",
        SPEC,
        smiles_col="SMILES",
        batch_size=32,
        featurize_workers=0,
        cache_dir=tmp_path / "cache",
        teacher=str(teacher),
        **kw,
    )
    dm.setup()
    return dm


@pytest.mark.parametrize("max_molecules", [None, 120])
def test_teacher_rows_follow_their_molecules_through_sampling(
    fixtures, tmp_path, teacher_file, corpus_smiles, max_molecules
):
    dm = _module(fixtures, tmp_path, teacher_file, max_molecules=max_molecules, seed=3)
    scaler = dm.teacher_scaler
    assert dm.num_teacher == 2 and scaler.names == ["teacher_0", "teacher_1"]  # the constant column dropped
    seen = set()
    for split in ("train", "valid"):
        for k in range(len(dm.datasets[split])):
            item = dm.datasets[split][k]
            raw = item.teacher.double() * torch.as_tensor(scaler.std) + torch.as_tensor(scaler.mean)
            row = int(round(raw[0, 1].item()))
            assert round(raw[0, 0].item()) == item.num_nodes == _heavy_atoms(corpus_smiles[row])
            seen.add(row)
    assert len(seen) == (max_molecules or len(corpus_smiles))
    train_rows = torch.stack([dm.datasets["train"][k].teacher[0] for k in range(len(dm.datasets["train"]))])
    assert torch.allclose(train_rows.mean(0), torch.zeros(2), atol=1e-5)  # standardized on the training rows
    assert dm.info()["teacher"] == {"path": str(teacher_file), "dim": 2}


def test_a_teacher_of_another_file_or_shape_is_refused_naming_it(fixtures, tmp_path, corpus_smiles):
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((len(corpus_smiles) - 1, 4), np.float32))
    with pytest.raises(InputFileError, match=r"short\.npy: 199 teacher rows for 200 corpus SMILES rows"):
        _module(fixtures, tmp_path, short)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(len(corpus_smiles), np.float32))
    with pytest.raises(
        InputFileError, match=r"flat\.npy: teacher embeddings must be a numeric \[rows, dim\]"
    ):
        _module(fixtures, tmp_path, flat)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}] * len(corpus_smiles), dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError, match=r"pickled\.npy: unreadable teacher embeddings"):
        _module(fixtures, tmp_path, pickled)


def test_a_teacher_that_failed_on_a_usable_molecule_is_refused(fixtures, tmp_path, corpus_smiles):
    values = np.ones((len(corpus_smiles), 3), np.float32)
    values[17, 1] = np.nan
    np.save(tmp_path / "holes.npy", values)
    with pytest.raises(InputFileError, match=r"holes\.npy: 1 teacher rows are NaN/inf .*corpus row 17"):
        _module(fixtures, tmp_path, tmp_path / "holes.npy")


def test_distillation_loss_decreases_and_needs_a_teacher(fixtures, tmp_path, teacher_file):
    dm = _module(fixtures, tmp_path, teacher_file)
    torch.manual_seed(0)
    encoder = DMPNNEncoder(SPEC, hidden_dim=32, num_layers=2)
    objective = TeacherDistillation(PretrainContext(encoder.out_dim, SPEC, num_teacher=dm.num_teacher), 32)
    batch = next(iter(dm.train_dataloader()))
    losses, logs = fit_objective(objective, encoder, batch, steps=25)
    # column 1 (the row number) is noise to the student: only the heavy-atom column can be learned
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]) and logs["r2"] > 0.2, losses
    with pytest.raises(MolgnnError, match="data.teacher="):
        TeacherDistillation(PretrainContext(encoder.out_dim, SPEC))


@pytest.mark.slow
def test_pretrain_distill_records_its_teacher(compose, fixtures, tmp_path, teacher_file):
    from molgnn.cli.pretrain import pretrain

    cfg = compose(
        "pretrain",
        [
            f"data.path={fixtures / 'pretrain_200.csv'}",
            "pretrain=distill",
            f"data.teacher={teacher_file}",
            "data.descriptor_names=[MolWt,MolLogP,TPSA]",
            "trainer.max_epochs=1",
            "encoder.hidden_dim=32",
            "data.batch_size=64",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "data.featurize_workers=0",
        ],
    )
    header = pretrain(cfg, tmp_path / "pre")
    assert [o["name"] for o in header["objectives"]] == ["descriptors", "attr_mask", "teacher"]
    assert header["corpus"]["teacher"] == {"path": str(teacher_file), "dim": 2}
    assert np.isfinite(header["final_metrics"]["val/teacher/loss"])
