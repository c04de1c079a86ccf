"""molgnn-predict on the bad input files of tests/fixtures/bad/: every readable row is kept (invalid ones with a
reason), unreadable files are one InputFileError naming the file. Needs one tiny trained checkpoint (slow)."""

from pathlib import Path

import pandas as pd
import pytest

from molgnn.errors import InputFileError
from molgnn.predict import predict_file
from conftest import PREDICT_FAST

pytestmark = pytest.mark.slow
BAD = Path(__file__).parent / "fixtures" / "bad"


@pytest.fixture(scope="module")
def ckpt(train_tiny) -> Path:
    """A TINY_ESOL model (conftest): D-MPNN, 1 epoch on the committed ESOL rows."""
    return train_tiny("reliability_predict") / "checkpoints" / "best.ckpt"


def predict(ckpt, name, tmp_path) -> pd.DataFrame:
    out = tmp_path / "pred.csv"
    predict_file(ckpt, BAD / name, out, **PREDICT_FAST)
    return pd.read_csv(out, keep_default_na=False)


@pytest.mark.parametrize(
    "name,rows",
    [
        ("crlf.csv", 10),
        ("bom.csv", 10),
        ("quoted_commas.csv", 10),
        ("duplicates.csv", 12),
        ("nan_inf.csv", 16),
    ],
)
def test_benign_inputs_keep_every_row(ckpt, tmp_path, name, rows):
    out = predict(ckpt, name, tmp_path)
    assert len(out) == rows and out.smiles.iloc[0] == "CCO" and out.valid.astype(str).eq("True").all()


def test_invalid_smiles_rows_are_kept_with_a_reason(ckpt, tmp_path):
    out = predict(ckpt, "all_invalid.csv", tmp_path)
    assert out.smiles.tolist() == ["not_a_smiles", "C1CC", "[Xx]"]
    assert out.valid.astype(str).eq("False").all() and out.error.str.len().gt(0).all()


def test_header_only_gives_an_empty_output(ckpt, tmp_path):
    assert len(predict(ckpt, "header_only.csv", tmp_path)) == 0


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("empty.csv", "file is empty"),
        ("latin1.csv", "not UTF-8 text"),
        ("no_smiles_column.csv", "no column 'smiles' (from input.smiles_col)"),
        ("semicolon.csv", "no column 'smiles'"),
        ("unterminated_quote.csv", "EOF inside string"),
    ],
)
def test_unreadable_inputs_are_one_error_and_no_output(ckpt, tmp_path, name, fragment):
    with pytest.raises(InputFileError) as err:
        predict(ckpt, name, tmp_path)
    assert name in str(err.value) and fragment in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "pred.csv").exists()


def test_truncated_gzip_input(ckpt, tmp_path):
    with pytest.raises(InputFileError, match="truncated.csv.gz"):
        predict(ckpt, "truncated.csv.gz", tmp_path)


def test_ragged_first_row_is_not_silently_shifted(ckpt, tmp_path):
    with pytest.raises(InputFileError, match="ragged.csv: line 2 has more fields than the header"):
        predict(ckpt, "ragged.csv", tmp_path)
    assert not (tmp_path / "pred.csv").exists()
