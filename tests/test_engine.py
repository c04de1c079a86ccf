"""molgnn.data.engine: one parse per SMILES for every product, equal to the separate computations it replaced;
the training path and prediction go through it."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from molgnn.chem.parse import ParseFailure, parse_smiles
from molgnn.chem.scaffold import murcko_scaffold
from molgnn.cli.calibration_report import calibrate_run
from molgnn.data.datamodule import MoleculeDataModule
from molgnn.data.engine import Products, featurize
from molgnn.data.graphs import collect_results
from molgnn.data.split import ScaffoldSplit
from molgnn.data.unlabeled import UnlabeledDataModule
from molgnn.encoders import make_encoder
from molgnn.featurize import default_spec
from molgnn.featurize.descriptors import descriptors_chunk
from molgnn.featurize.graph import smiles_to_arrays
from molgnn.featurize.minimol import minimol_spec
from molgnn.nn.heads import MLPHead
from molgnn.predict.featurize import featurize_job, featurized_chunks
from molgnn.tasks.calibrate import build_domain
from molgnn.tasks.regression import RegressionTask
from molgnn.uncertainty.domain import morgan_bits
from molgnn.uncertainty.settings import UncertaintySettings

NAMES = ("MolWt", "TPSA", "MolLogP", "NumHDonors", "BertzCT", "PEOE_VSA1", "MaxPartialCharge")


def _smiles(fixtures, name, col="smiles"):
    return pd.read_csv(fixtures / name)[col].tolist()


@pytest.fixture
def parse_count(monkeypatch):
    """Counts parse_smiles calls made through any molgnn module (a wrapper around the real function)."""
    calls = []

    def counting(smiles):
        calls.append(smiles)
        return parse_smiles(smiles)

    for name, module in list(sys.modules.items()):
        if name.startswith("molgnn") and getattr(module, "parse_smiles", None) is parse_smiles:
            monkeypatch.setattr(module, "parse_smiles", counting)
    return calls


def _reference(smiles, spec):
    """The separate computations the engine replaced (each parses again)."""
    mols = [parse_smiles(s) for s in smiles]
    return {
        "graphs": collect_results([smiles_to_arrays(s, spec) for s in smiles], spec),
        "scaffolds": ["" if isinstance(m, ParseFailure) else murcko_scaffold(m) for m in mols],
        "canonical": [
            "" if isinstance(m, ParseFailure) else Chem.MolToSmiles(m, isomericSmiles=False) for m in mols
        ],
        "descriptors": descriptors_chunk(smiles, list(NAMES)),
        "fp": [None if isinstance(m, ParseFailure) else morgan_bits(m) for m in mols],
    }


@pytest.mark.parametrize(
    "name,col,spec",
    [("esol_bad_rows.csv", "smiles", default_spec()), ("pretrain_200.csv", "SMILES", minimol_spec())],
)
def test_products_equal_the_separate_computations_with_one_parse(fixtures, parse_count, name, col, spec):
    smiles = _smiles(fixtures, name, col)
    ref = _reference(smiles, spec)
    parse_count.clear()
    out = featurize(smiles, Products(spec, True, NAMES, True, (("fp", morgan_bits),)), num_workers=1)
    assert len(parse_count) == len(smiles)
    for key in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr"):
        assert torch.equal(getattr(out.graphs.graphs, key), getattr(ref["graphs"].graphs, key))
    assert torch.equal(out.graphs.graph_index, ref["graphs"].graph_index)
    assert out.graphs.failures == ref["graphs"].failures
    assert out.scaffolds == ref["scaffolds"] and out.canonical == ref["canonical"]
    np.testing.assert_array_equal(out.descriptors, ref["descriptors"])
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(out.arrays["fp"], ref["fp"]))


def _untrained_task(dm):
    """A small untrained regression task over ``dm`` (calibration needs embeddings and means, not skill)."""
    torch.manual_seed(0)
    encoder = make_encoder("dmpnn", spec=dm.spec, hidden_dim=16, num_layers=1)
    head = MLPHead(encoder.out_dim + dm.num_descriptors, dm.num_targets, hidden_dim=8)
    return RegressionTask(
        encoder, head, dm.scaler, dm.target_names, optimizer=None, descriptor_scaler=dm.descriptor_scaler
    ).eval()


def test_a_training_run_parses_each_smiles_once(fixtures, parse_count, tmp_path):
    """Setup + the whole calibration (domain index, validation record, test similarity): one parse each."""
    path = fixtures / "esol_small.csv"
    dm = MoleculeDataModule(
        str(path),
        "smiles",
        ["logS"],
        ScaffoldSplit(),
        default_spec(),
        featurize_workers=0,
        descriptors=True,
        descriptor_names=list(NAMES),
    )
    dm.setup()
    metrics = calibrate_run(_untrained_task(dm), dm, UncertaintySettings(), None, tmp_path)
    assert np.isfinite(metrics["test/spearman_similarity_error"])
    assert len(parse_count) == len(_smiles(fixtures, "esol_small.csv"))
    smiles = dm.smiles
    assert dm.split == ScaffoldSplit()(smiles, list(range(len(smiles))))  # scaffolds computed on their own
    ref = descriptors_chunk(smiles, list(NAMES))
    assert np.allclose(dm.datasets["train"].desc, dm.descriptor_scaler.transform(ref))


def test_data_module_fingerprints_are_the_morgan_bits_of_each_row(fixtures, tmp_path):
    """Per row, from the engine (fresh and from its cache): morgan_bits(parse_smiles(s)); zeros where invalid."""
    smiles = _smiles(fixtures, "esol_bad_rows.csv")
    for _ in range(2):  # the second setup reads the cache file
        dm = MoleculeDataModule(
            str(fixtures / "esol_bad_rows.csv"),
            "smiles",
            ["logS"],
            ScaffoldSplit(),
            default_spec(),
            featurize_workers=0,
            cache_dir=str(tmp_path),
        )
        dm.setup()
        assert dm.fingerprints.dtype == torch.uint8 and dm.fingerprints.shape == (len(smiles), 256)
        for s, fp in zip(smiles, dm.fingerprints.numpy()):
            mol = parse_smiles(s)
            assert np.array_equal(
                fp, np.zeros(256, np.uint8) if isinstance(mol, ParseFailure) else morgan_bits(mol)
            )
    assert len(list(tmp_path.glob("features-*.pt"))) == 1


def test_calibration_from_engine_fingerprints_is_bit_identical_to_parsing_again(fixtures, tmp_path):
    """calibration.json and the domain buffers are the same whether the bits come from the data module or
    from calibrate's fallback (a data module built without fingerprints parses again)."""
    runs = {}
    for fps in (True, False):
        dm = MoleculeDataModule(
            str(fixtures / "esol_small.csv"),
            "smiles",
            ["logS"],
            ScaffoldSplit(),
            default_spec(),
            featurize_workers=0,
            fingerprints=fps,
        )
        dm.setup()
        assert (dm.fingerprints is not None) == fps
        task, out = _untrained_task(dm), tmp_path / str(fps)
        out.mkdir()
        domain = build_domain(task, dm, UncertaintySettings())
        calibrate_run(task, dm, UncertaintySettings(), None, out)
        runs[fps] = domain, json.loads((out / "calibration.json").read_text())
    (d1, c1), (d0, c0) = runs[True], runs[False]
    assert torch.equal(d1.fingerprints, d0.fingerprints) and torch.equal(d1.embeddings, d0.embeddings)
    assert c1 == c0


def test_a_pretraining_corpus_parses_each_smiles_once(fixtures, parse_count, tmp_path):
    exclude = tmp_path / "ex.csv"
    exclude.write_text(
        "smiles\n" + "".join(f"{s}\n" for s in _smiles(fixtures, "pretrain_200.csv", "SMILES")[:5])
    )
    dm = UnlabeledDataModule(
        fixtures / "pretrain_200.csv",
        default_spec(),
        smiles_col="SMILES",
        featurize_workers=0,
        exclude=[{"path": str(exclude)}],
        descriptors=True,
        descriptor_names=list(NAMES),
    )
    dm.setup()
    assert len(parse_count) == 200 + 5  # the corpus once, the exclusion file once
    assert dm.num_excluded == 5 and dm.num_descriptors > 0


def test_prediction_jobs_carry_the_same_products(fixtures):
    smiles = _smiles(fixtures, "esol_bad_rows.csv")
    spec, ref = default_spec(), _reference(smiles, default_spec())
    job = featurize_job(smiles, spec, list(NAMES), fingerprints=True)
    graphs, valid = ref["graphs"], ref["graphs"].graph_index.numpy() >= 0
    assert np.array_equal(job["valid"], valid) and job["x"].dtype == np.uint8
    assert np.array_equal(job["x"], graphs.graphs.x.numpy()) and np.array_equal(
        job["node_ptr"], graphs.graphs.node_ptr
    )
    shift = np.repeat(graphs.graphs.node_ptr[:-1].numpy(), np.diff(graphs.graphs.edge_ptr.numpy()))
    assert np.array_equal(job["edge_index"], graphs.graphs.edge_index.numpy() + shift)
    assert job["errors"] == [graphs.failures.get(r, "") for r in range(len(smiles))]
    np.testing.assert_array_equal(job["desc"], ref["descriptors"][valid])
    assert np.array_equal(job["fp"], np.stack([f for f, ok in zip(ref["fp"], valid) if ok]))


@pytest.mark.parametrize("workers", [0, 1])
def test_prediction_reads_at_most_window_chunks_ahead(workers):
    read, window = [], 2

    def chunks():
        for k in range(8):
            read.append(k)
            yield k, pd.DataFrame({"smiles": ["CCO", "c1ccccc1", "bad("]})

    for k, _frame, jobs in featurized_chunks(chunks(), "smiles", default_spec(), [], workers, window=window):
        assert len(read) <= k + 1 + window
        assert [j.get()["valid"].tolist() for j in jobs] == [[True, True, False]]
    assert read == list(range(8))
