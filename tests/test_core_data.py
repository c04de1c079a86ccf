"""Table reading, cached featurization, splits, scaler, DataModule bad-row reporting."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from molgnn.data import engine as engine_mod
from molgnn.data.datamodule import MoleculeDataModule
from molgnn.data.engine import Products, featurize_cached
from molgnn.data.graphs import featurize_smiles, table_key
from molgnn.data.scaler import TargetScaler
from molgnn.data.split import PredefinedSplit, RandomSplit, ScaffoldSplit
from molgnn.data.table import read_labeled_table
from molgnn.errors import InputFileError
from molgnn.featurize import default_spec

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_bad_rows_are_reported_not_dropped(fixtures):
    table = read_labeled_table(fixtures / "esol_bad_rows.csv", "smiles", ["logS"])
    assert table.problems[17].startswith("target 'logS' is not a number: 'abc'")
    assert table.problems[23] == "no target value"
    dm = MoleculeDataModule(
        str(fixtures / "esol_bad_rows.csv"),
        "smiles",
        ["logS"],
        RandomSplit(seed=0),
        default_spec(),
        cache_dir=None,
    )
    dm.setup()
    assert dm.invalid_rows.row.tolist() == [5, 11, 17, 23]
    assert dm.invalid_rows.line.tolist() == [7, 13, 19, 25]
    assert "syntax" in dm.invalid_rows.reason[0] and "empty" in dm.invalid_rows.reason[1]
    kept = sorted(dm.split["train"] + dm.split["valid"] + dm.split["test"])
    assert kept == [r for r in range(60) if r not in (5, 11, 17, 23)]  # everything else is used


def test_missing_column_and_file_errors_name_them(fixtures, tmp_path):
    with pytest.raises(InputFileError, match=r"no column 'logP' \(from data.target_cols\[0\]\)"):
        read_labeled_table(fixtures / "esol_small.csv", "smiles", ["logP"])
    with pytest.raises(InputFileError, match="file not found"):
        read_labeled_table(tmp_path / "nope.csv", "smiles", ["logS"])
    (tmp_path / "head.csv").write_text("smiles,logS\n")
    with pytest.raises(InputFileError, match="no data rows"):
        read_labeled_table(tmp_path / "head.csv", "smiles", ["logS"])
    (tmp_path / "allbad.csv").write_text("smiles,logS\nxyz,1\nC1C,2\n")
    dm = MoleculeDataModule(str(tmp_path / "allbad.csv"), "smiles", ["logS"], RandomSplit(), default_spec())
    with pytest.raises(InputFileError, match="no valid rows"):
        dm.setup()


def test_multi_target_missing_values_are_nan(tmp_path):
    (tmp_path / "m.csv").write_text("smiles,a,b\nCCO,1.0,\nCCN,,2.0\nCCC,,\n")
    table = read_labeled_table(tmp_path / "m.csv", "smiles", ["a", "b"])
    assert np.isnan(table.targets[0, 1]) and table.targets[1, 1] == 2.0
    assert set(table.problems) == {2}


def test_cache_second_run_does_no_rdkit_work(fixtures, tmp_path, monkeypatch):
    spec = default_spec()
    path = fixtures / "esol_small.csv"
    smiles = pd.read_csv(path).smiles.tolist()
    products = Products(spec, scaffolds=True)
    first = featurize_cached(table_key(path, "smiles"), smiles, products, tmp_path)
    assert len(list(tmp_path.glob("features-*.pt"))) == 1

    def boom(*a, **k):
        raise AssertionError("featurized again despite the cache")

    monkeypatch.setattr(engine_mod, "featurize", boom)
    second = featurize_cached(table_key(path, "smiles"), smiles, products, tmp_path)
    assert torch.equal(first.graphs.graphs.x, second.graphs.graphs.x)
    assert (
        torch.equal(first.graphs.graph_index, second.graphs.graph_index)
        and first.scaffolds == second.scaffolds
    )
    blob = torch.load(next(tmp_path.glob("features-*.pt")), weights_only=True)
    assert "x" in blob["graphs"]
    with pytest.raises(AssertionError, match="featurized again"):  # another product set is another cache
        featurize_cached(table_key(path, "smiles"), smiles, Products(spec), tmp_path)


def test_parallel_featurization_matches_serial():
    smiles = pd.read_csv(ROOT / "data/moleculenet/lipophilicity.csv").smiles.tolist()[:2500] + ["bad("]
    serial = featurize_smiles(smiles, default_spec(), num_workers=0)
    parallel = featurize_smiles(smiles, default_spec(), num_workers=2)
    assert torch.equal(serial.graphs.x, parallel.graphs.x)
    assert torch.equal(serial.graphs.edge_index, parallel.graphs.edge_index)
    assert serial.failures == parallel.failures == {2500: "invalid SMILES syntax"}


@pytest.mark.parametrize("name", ["esol", "freesolv"])
def test_scaffold_split_reproduces_bundled_split_files(name):
    smiles = pd.read_csv(ROOT / f"data/moleculenet/{name}.csv").smiles.tolist()
    ours = ScaffoldSplit()(smiles, list(range(len(smiles))))
    ref = json.loads((ROOT / f"data/moleculenet/splits/{name}_scaffold.json").read_text())
    assert {k: sorted(v) for k, v in ref.items()} == ours


def test_random_split_is_seeded_and_predefined_checks_range(tmp_path):
    rows = list(range(100))
    a, b = RandomSplit(seed=1)(["C"] * 100, rows), RandomSplit(seed=1)(["C"] * 100, rows)
    assert a == b and len(a["train"]) == 80 and RandomSplit(seed=2)(["C"] * 100, rows) != a
    (tmp_path / "s.json").write_text(json.dumps({"train": [0, 1], "valid": [2], "test": [500]}))
    with pytest.raises(InputFileError, match="test row 500 is out of range"):
        PredefinedSplit(str(tmp_path / "s.json"))(["C"] * 10, list(range(10)))


def test_scaler_fits_train_and_inverts():
    y = torch.tensor([[1.0, float("nan")], [3.0, 5.0], [5.0, 5.0]])
    s = TargetScaler.fit(y)
    assert torch.allclose(s.mean, torch.tensor([3.0, 5.0])) and s.std[1] == 1.0  # constant target -> std 1
    assert torch.allclose(s.inverse(s.transform(y[1:])), y[1:])


def test_train_loader_never_yields_a_one_molecule_batch(tmp_path):
    """FreeSolv's 513 training molecules in batches of 64 leave one over; when it is methane, batch norm over
    its single atom fails in training mode (found with the Hu GCN). Train drops that leftover, eval keeps all."""
    smiles = [f"{'C' * (i % 7 + 1)}{'O' * (i // 7 + 1)}" for i in range(24)] + ["C"]
    path = tmp_path / "t.csv"
    path.write_text("smiles,y\n" + "".join(f"{s},{i}\n" for i, s in enumerate(smiles)))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": list(range(20)) + [24], "valid": [20, 21], "test": [22, 23]}))
    dm = MoleculeDataModule(
        str(path),
        "smiles",
        ["y"],
        PredefinedSplit(str(split)),
        default_spec(),
        batch_size=4,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 21
    sizes = [b.num_graphs for b in dm.train_dataloader()]
    assert min(sizes) >= 2 and sum(sizes) == 20
    assert sum(b.num_graphs for b in dm.val_dataloader()) == 2
