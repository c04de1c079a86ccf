"""Untrusted checkpoints: every unusable file is one CheckpointError naming it; a pickle that would run code
is refused without running it; nothing in the package loads with weights_only=False."""

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from molgnn.checkpoint import FORMAT_VERSION, export_encoder, load_encoder, read_header, safe_load
from molgnn.errors import CheckpointError
from molgnn.featurize.spec import FeatureVocab, FeaturizerSpec, default_spec
from molgnn.nn import ENCODER_FAMILIES

PACKAGE = Path(__file__).resolve().parents[1] / "molgnn"


class RunsCode:
    """Unpickling this calls os.system and creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture
def good(tmp_path) -> Path:
    encoder = ENCODER_FAMILIES["gine"](spec=default_spec(), hidden_dim=16, num_layers=1)
    return export_encoder(encoder, tmp_path / "good.pt")


def edited(good: Path, tmp_path: Path, name: str, edit) -> Path:
    blob = torch.load(good, weights_only=True)
    edit(blob)
    torch.save(blob, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "how", ["torch_zip", "torch_legacy", "raw_pickle_p2", "raw_pickle_p4", "eval_in_dict"]
)
def test_code_running_pickle_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / f"evil_{how}.pt"
    payload = {"molgnn": {"format_version": 1}, "state_dict": {}, "x": RunsCode(marker)}
    if how == "torch_zip":
        torch.save(payload, path)
    elif how == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    elif how == "raw_pickle_p2":
        path.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    elif how == "raw_pickle_p4":
        path.write_bytes(pickle.dumps(RunsCode(marker), protocol=4))
    else:
        torch.save({"state_dict": {"w": EvalsCode(marker)}}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    assert not marker.exists(), "the pickle payload ran"
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400
    assert "weights_only` set to `False`" not in message  # never advise the unsafe load
    if how in ("torch_zip", "torch_legacy", "eval_in_dict"):
        assert "refused: the file would import code" in message and "GLOBAL" in message
    # the payload really is live: plain pickle would have run it
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize(
    "name,make,fragment",
    [
        ("truncated.pt", lambda g: g.read_bytes()[: len(g.read_bytes()) // 2], "not a readable checkpoint"),
        ("random.pt", lambda g: os.urandom(4096), "not a readable checkpoint"),
        ("empty.pt", lambda g: b"", "not a readable checkpoint"),
        ("text.pt", lambda g: b"hello, this is not a checkpoint\n", "not a readable checkpoint"),
        ("empty_zip.pt", lambda g: b"PK\x05\x06" + b"\0" * 18, "not a readable checkpoint"),
    ],
)
def test_damaged_files(good, tmp_path, name, make, fragment):
    path = tmp_path / name
    path.write_bytes(make(good))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: {fragment}")):
        load_encoder(path)


def test_missing_and_non_dict(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint not found"):
        safe_load(tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="top level is list, expected a dict"):
        safe_load(tmp_path / "list.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(
        CheckpointError, match="no molgnn header; for a plain state dict use encoder=state_dict"
    ):
        load_encoder(tmp_path / "plain.pt")


def test_newer_format_version(good, tmp_path):
    def newer(blob):
        blob["molgnn"]["format_version"] = FORMAT_VERSION + 1

    path = edited(good, tmp_path, "newer.pt", newer)
    with pytest.raises(
        CheckpointError,
        match=f"format version {FORMAT_VERSION + 1} is newer than this molgnn "
        f"supports \\({FORMAT_VERSION}\\); upgrade molgnn",
    ):
        load_encoder(path)


@pytest.mark.parametrize(
    "name,edit,fragment",
    [
        (
            "strversion.pt",
            lambda b: b["molgnn"].update(format_version="1"),
            "format_version is '1', not an integer",
        ),
        ("nokind.pt", lambda b: b["molgnn"].pop("kind"), "kind is None"),
        ("noencoder.pt", lambda b: b["molgnn"].pop("encoder"), "encoder must be"),
        (
            "badargs.pt",
            lambda b: b["molgnn"]["encoder"]["args"].update(bogus=1),
            "encoder family 'gine' takes no argument(s) ['bogus']",
        ),
        ("specstr.pt", lambda b: b["molgnn"].update(spec="molgnn"), "spec cannot be read"),
        ("heads.pt", lambda b: b["molgnn"].update(heads=[{"family": 3}]), "heads must be a list"),
        ("nostate.pt", lambda b: b.pop("state_dict"), "no state_dict"),
    ],
)
def test_malformed_headers(good, tmp_path, name, edit, fragment):
    path = edited(good, tmp_path, name, edit)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: malformed molgnn header: {fragment}")):
        load_encoder(path)


def test_unknown_family_is_never_imported(good, tmp_path):
    path = edited(good, tmp_path, "family.pt", lambda b: b["molgnn"]["encoder"].update(family="os.system"))
    with pytest.raises(CheckpointError, match="unknown encoder family 'os.system'; known: "):
        load_encoder(path)


def test_other_featurizer_spec_is_spelled_out(good, tmp_path):
    base = default_spec()
    other = FeaturizerSpec(
        base.name,
        base.version + 1,
        (FeatureVocab("atomic_num", (6, 7, 8)),) + base.atom_features[1:],
        base.bond_features,
    )
    with pytest.raises(CheckpointError) as err:
        load_encoder(good, expect_spec=other)
    assert "featurizer spec differs from the run's" in str(err.value)
    assert "atom_features[atomic_num].values" in str(err.value) and "version: 2 != 1" in str(
        err.value
    )  # run != file


def test_wrong_tensors_list_keys(good, tmp_path):
    def shrink(blob):
        key = next(iter(blob["state_dict"]))
        blob["state_dict"][key] = blob["state_dict"][key][:1]
        blob["state_dict"]["extra.weight"] = torch.zeros(1)

    path = edited(good, tmp_path, "shapes.pt", shrink)
    with pytest.raises(
        CheckpointError, match="unexpected keys \\(1\\): extra.weight; shape mismatches \\(1\\)"
    ):
        load_encoder(path)


def test_good_file_still_loads(good):
    encoder = load_encoder(good, expect_spec=default_spec())
    assert encoder.family == "gine" and read_header(safe_load(good), good)["kind"] == "encoder"


def test_no_weights_only_false_anywhere_in_the_package():
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"weights_only\s*=\s*False", line) or re.search(r"pickle\.loads?\(", line)
    ]
    assert not offenders, offenders
    loads = [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "torch.load(" in line and "weights_only=True" not in line
    ]
    assert not loads, f"torch.load without weights_only=True: {loads}"
