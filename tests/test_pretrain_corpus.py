"""Pretraining data and products: the corpus builder (data/pretrain/make_corpus.py), benchmark test
molecules excluded from the corpus, and the shipped encoders in models/pretrained/."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from molgnn.data.unlabeled import UnlabeledDataModule, canonical_smiles
from molgnn.featurize import default_spec, smiles_to_graph

SPEC = default_spec()


def test_exclusion_removes_benchmark_test_molecules(fixtures, tmp_path):
    from molgnn.cli import PROJECT_ROOT

    esol = pd.read_csv(f"{PROJECT_ROOT}/data/moleculenet/esol.csv")
    split = json.loads(open(f"{PROJECT_ROOT}/data/moleculenet/splits/esol_scaffold.json").read())
    test_smiles = [esol.smiles[r] for r in split["test"][:5]]
    train_smiles = [esol.smiles[r] for r in split["train"][:3]]
    # write the test molecules in a different (non-canonical, random-order) SMILES form
    from rdkit import Chem

    variants = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True, canonical=False) for s in test_smiles]
    base = pd.read_csv(fixtures / "pretrain_200.csv").SMILES.tolist()[:40]
    path = tmp_path / "corpus.smi"
    path.write_text("\n".join(base + variants + train_smiles) + "\n")
    exclude = [
        {
            "path": f"{PROJECT_ROOT}/data/moleculenet/esol.csv",
            "smiles_col": "smiles",
            "split_path": f"{PROJECT_ROOT}/data/moleculenet/splits/esol_scaffold.json",
            "keys": ["test"],
        }
    ]
    dm = UnlabeledDataModule(path, SPEC, featurize_workers=0, cache_dir=tmp_path / "c", exclude=exclude)
    dm.setup()
    assert dm.num_excluded == len(set(canonical_smiles(test_smiles, 0))) and dm.num_molecules == 43
    kept = {tuple(dm.graphs.get(int(g)).x.flatten().tolist()) for ds in dm.datasets.values() for g in ds.rows}
    for s in test_smiles:
        assert tuple(smiles_to_graph(s, SPEC).x.flatten().tolist()) not in kept
    off = UnlabeledDataModule(
        path, SPEC, featurize_workers=0, cache_dir=tmp_path / "c", exclude=exclude, exclude_enabled=False
    )
    off.setup()
    assert off.num_excluded == 0 and off.num_molecules == 48


SHIPPED = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "models" / "pretrained").glob("*.pt"))


@pytest.mark.parametrize("shipped", [None, *SHIPPED])
def test_shipped_encoders_load_safely_with_their_provenance(compose, shipped):
    """encoder=pretrained (the default file, None) and every other encoder in models/pretrained/ loads
    weights_only, matches the default featurizer and says how it was made: objectives, corpus, benchmark
    molecules excluded, steps."""
    from hydra.utils import instantiate

    from molgnn.checkpoint import read_header, safe_load

    cfg = compose(
        "train",
        [
            "encoder=pretrained",
            *([f"encoder.path=${{paths.root_dir}}/models/pretrained/{shipped}"] if shipped else []),
        ],
    )
    path = cfg.encoder.path
    blob = torch.load(path, weights_only=True)
    header = read_header(safe_load(path), path)
    pre = header["pretraining"]
    assert blob["molgnn"]["pretraining"] == pre
    assert [o["name"] for o in pre["objectives"]] and pre["steps"] > 1000
    assert pre["corpus"]["size"] > 50_000 and pre["corpus"]["excluded"] > 0 and pre["corpus"]["descriptors"]
    encoder = instantiate(cfg.encoder)  # checks the run's featurizer spec against the file's
    assert encoder.spec.fingerprint() == default_spec().fingerprint()


def test_make_corpus_merges_dedupes_and_counts_unparsable(tmp_path):
    """data/pretrain/make_corpus.py: SMILES column found by name, duplicates removed on canonical SMILES
    across files (first spelling kept), unparsable rows counted and left out, labels dropped."""
    (tmp_path / "a.csv").write_text("smiles,label\nCCO,1\nOCC,0\nnot_a_smiles,1\nc1ccccc1,0\n")
    (tmp_path / "b.csv").write_text("Class,mol\n1,C1=CC=CC=C1\n0,CC(=O)O\n")
    out = tmp_path / "corpus.csv.gz"
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "data" / "pretrain" / "make_corpus.py"),
            str(tmp_path / "a.csv"),
            str(tmp_path / "b.csv"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "a.csv: 4 rows, 2 new molecules, 1 unparsable" in proc.stdout
    assert "b.csv: 2 rows, 1 new molecules, 0 unparsable" in proc.stdout
    assert pd.read_csv(out)["SMILES"].tolist() == ["CCO", "c1ccccc1", "CC(=O)O"]


def test_make_corpus_names_the_bad_file_in_one_line(tmp_path):
    script = Path(__file__).resolve().parents[1] / "data" / "pretrain" / "make_corpus.py"
    (tmp_path / "labels.csv").write_text("name,label\nx,1\n")
    for bad in (tmp_path / "missing.csv", tmp_path / "labels.csv"):
        proc = subprocess.run(
            [sys.executable, str(script), str(bad), "-o", str(tmp_path / "out.csv.gz")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.csv.gz").exists()
