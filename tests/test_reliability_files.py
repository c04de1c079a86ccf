"""Bad input files: each has a defined behaviour (rows read, or one InputFileError naming the file and what is
wrong), never a traceback. Fixtures in tests/fixtures/bad/; the table in docs/reliability.md lists them."""

import logging
import math
import subprocess
import sys

import numpy as np
import pytest

from molgnn.data.datamodule import MoleculeDataModule
from molgnn.data.split import RandomSplit
from molgnn.data.table import read_frame, read_labeled_table
from molgnn.errors import InputFileError
from molgnn.featurize.spec import default_spec

# file -> a fragment the one-line error must contain (besides the file name)
REFUSED = {
    "empty.csv": "file is empty",
    "header_only.csv": "no data rows (header only)",
    "no_smiles_column.csv": "no column 'smiles' (from data.smiles_col); columns are: molecule, logS",
    "semicolon.csv": "no column 'smiles' (from data.smiles_col); columns are: smiles;logS",
    "tab_in_csv.csv": "no column 'smiles'",
    "latin1.csv": "not UTF-8 text (line 12, byte 0xe9)",
    "ragged.csv": "line 2 has more fields than the header (2 columns)",
    "unterminated_quote.csv": "cannot parse as csv",
    "binary.csv": "cannot parse as csv",
    "truncated.csv.gz": "cannot read: Compressed file ended",
}


@pytest.fixture
def bad(fixtures):
    return fixtures / "bad"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unusable_tables_are_one_clear_error(bad, name):
    with pytest.raises(InputFileError) as err:
        read_labeled_table(bad / name, "smiles", ["logS"])
    message = str(err.value)
    assert name in message and REFUSED[name] in message and "\n" not in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError, match="nope.csv: file not found"):
        read_labeled_table(tmp_path / "nope.csv", "smiles", ["logS"])
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(InputFileError, match="d.csv: not a regular file"):
        read_frame(tmp_path / "d.csv")
    with pytest.raises(InputFileError, match="unsupported file type '.xlsx'"):
        (tmp_path / "t.xlsx").write_text("x")
        read_frame(tmp_path / "t.xlsx")


@pytest.mark.parametrize("name", ["crlf.csv", "bom.csv", "quoted_commas.csv"])
def test_benign_format_variants_read_the_same_rows(bad, name):
    table = read_labeled_table(bad / name, "smiles", ["logS"])
    assert table.smiles[:3] == ["CCO", "c1ccccc1", "CC(=O)O"]  # no '\r', no BOM in the column name
    assert table.targets[:3, 0].tolist() == pytest.approx([-0.77, -1.64, 1.1])
    assert not table.problems and len(table.smiles) == 10


def test_nan_inf_and_text_targets_are_row_problems(bad):
    table = read_labeled_table(bad / "nan_inf.csv", "smiles", ["logS"])
    assert len(table.smiles) == 16
    assert table.problems == {
        10: "no target value",
        11: "target 'logS' is not finite: 'inf'",
        12: "target 'logS' is not finite: '-inf'",
        13: "no target value",
        14: "target 'logS' is not a number: 'abc'",
        15: "target 'logS' is not finite: '1e400'",
    }
    assert np.isfinite(table.targets[:10]).all()


def test_datamodule_leaves_out_bad_target_rows(bad, tmp_path):
    dm = MoleculeDataModule(
        str(bad / "nan_inf.csv"),
        "smiles",
        ["logS"],
        RandomSplit((0.6, 0.2, 0.2)),
        default_spec(),
        batch_size=4,
        cache_dir=str(tmp_path),
    )
    dm.setup("fit")
    assert dm.invalid_rows.row.tolist() == [10, 11, 12, 13, 14, 15]
    assert dm.invalid_rows.line.tolist() == [12, 13, 14, 15, 16, 17]  # 1-based file lines, header = line 1
    used = sorted(r for rows in dm.split.values() for r in rows)
    assert used == list(range(10))
    batch = next(iter(dm.train_dataloader()))
    assert torch_isfinite(batch.y)


def torch_isfinite(t) -> bool:
    return bool(t.isfinite().all())


def test_duplicates_are_kept_and_reported(bad, caplog):
    with caplog.at_level(logging.WARNING, logger="molgnn.data.table"):
        table = read_labeled_table(bad / "duplicates.csv", "smiles", ["logS"])
    assert len(table.smiles) == 12 and table.smiles[10:] == ["CCO", "c1ccccc1"] and not table.problems
    assert "2 row(s) repeat an earlier SMILES string (kept; first: line 12 'CCO')" in caplog.text


def test_all_rows_invalid_is_one_error(bad, tmp_path):
    dm = MoleculeDataModule(
        str(bad / "all_invalid.csv"),
        "smiles",
        ["logS"],
        RandomSplit(),
        default_spec(),
        cache_dir=str(tmp_path),
    )
    with pytest.raises(
        InputFileError,
        match=r"all_invalid.csv: no valid rows \(3 invalid; first: line 2: "
        r"invalid SMILES syntax\)",
    ):
        dm.setup("fit")


def test_smi_file_with_crlf_and_bad_bytes(tmp_path):
    p = tmp_path / "m.smi"
    p.write_bytes(b"CCO ethanol\r\nc1ccccc1\tbenzene\r\n\r\n")
    frame = read_frame(p)
    assert frame.smiles.tolist() == ["CCO", "c1ccccc1", ""] and frame.id.tolist() == [
        "ethanol",
        "benzene",
        "",
    ]
    p.write_bytes(b"CCO a\nC\xff b\n")
    with pytest.raises(InputFileError, match=r"m.smi: not UTF-8 text \(line 2, byte 0xff\)"):
        read_frame(p)


def test_nul_byte_and_huge_cell_become_invalid_rows(tmp_path):
    p = tmp_path / "odd.csv"
    p.write_text("smiles,logS\n" + "C\x00C,1\n" + "C" * 6000 + ",2\n" + "CCO,3\nCC,4\nCCC,5\nCCCC,6\n")
    dm = MoleculeDataModule(
        str(p), "smiles", ["logS"], RandomSplit((0.5, 0.25, 0.25)), default_spec(), cache_dir=None
    )
    dm.setup("fit")
    reasons = dict(zip(dm.invalid_rows.row, dm.invalid_rows.reason))
    assert reasons == {0: "invalid SMILES syntax", 1: "SMILES longer than 5000 characters"}


TINY = [
    "encoder.hidden_dim=32",
    "encoder.num_layers=2",
    "head.hidden_dim=16",
    "~callbacks.rich_progress_bar",
    "logger=none",
    "trainer.max_epochs=1",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,fragment",
    [
        ("latin1.csv", "not UTF-8 text (line 12, byte 0xe9)"),
        ("semicolon.csv", "no column 'smiles' (from data.smiles_col)"),
    ],
)
def test_train_cli_bad_file_exit_2_one_line(bad, tmp_path, name, fragment):
    cmd = [
        sys.executable,
        "-m",
        "molgnn.cli.train",
        "data=csv",
        f"data.path={bad / name}",
        "data.target_cols=[logS]",
        "split=random",
        f"paths.cache_dir={tmp_path / 'c'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("molgnn-train: error: ") and name in last and fragment in last


def test_nan_target_never_reaches_the_loss():
    from molgnn.tasks.regression import masked_mse
    import torch

    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.5, float("nan")], [float("nan"), float("nan")]])
    loss = masked_mse(pred, target)
    assert math.isclose(float(loss), 0.25) and loss.isfinite()


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("latin1.csv", "not UTF-8 text (line 12"),
        ("ragged.csv", "line 2 has more fields than the header"),
        ("truncated.csv.gz", "cannot read"),
        ("empty.csv", "file is empty"),
        ("no_smiles_column.csv", "no column 'smiles'"),
    ],
)
def test_pretrain_corpus_reader_uses_the_same_checks(bad, name, fragment):
    from molgnn.data.unlabeled import read_smiles_column

    with pytest.raises(InputFileError) as err:
        read_smiles_column(bad / name, "smiles")
    assert name in str(err.value) and fragment in str(err.value)
