"""The one reader: ``molgnn.weights.read_weights`` recognises every weights file molgnn accepts, refuses a
pickle that would run code, and reads through the package's one ``torch.load`` (``storage.load_torch``); the loaders
dispatch on its kind. ``FeaturizerSpec.require_equal`` spells out spec differences."""

from __future__ import annotations

import ast
import os
import sys
import types
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from molgnn.checkpoint import (
    encoder_fingerprint,
    export_encoder,
    head_header,
    load_encoder,
    make_header,
    save_atomic,
    write_ensemble,
)
from molgnn.chemprop_file import read_chemprop
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.spec import FeatureVocab, default_spec
from molgnn.nn.gine import GINEEncoder
from molgnn.nn.heads import MLPHead
from molgnn.predictor import load_models, load_predictor
from molgnn.transfer import bundle_checkpoints, load_foreign_encoder, load_state_dict_encoder
from molgnn.weights import read_weights

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGE = Path(__file__).resolve().parents[1] / "molgnn"


@pytest.fixture
def encoder() -> GINEEncoder:
    torch.manual_seed(0)
    return GINEEncoder(default_spec(), hidden_dim=8, num_layers=1)


def _model_file(path: Path, encoder, target: str = "y") -> Path:
    """A molgnn-train-shaped checkpoint (kind "model", one head) made without training."""
    head = MLPHead(encoder.out_dim, 1, hidden_dim=8)
    scaler = SimpleNamespace(mean=torch.zeros(1), std=torch.ones(1))
    info = head_header(target, head, [target], scaler, encoder_fingerprint(encoder))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"head.{k}": v for k, v in head.state_dict().items()}
    return save_atomic(
        {"molgnn": make_header("model", encoder, heads=[info]), "state_dict": state, "epoch": 0}, path
    )


def test_every_kind_is_recognised(encoder, tmp_path):
    model = _model_file(tmp_path / "a.ckpt", encoder)
    pretrain = tmp_path / "pretrain.ckpt"
    torch.save(
        {
            "molgnn": make_header("pretrain", encoder),
            "epoch": 1,
            "state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        },
        pretrain,
    )
    torch.save({"epoch": 3, "state_dict": {"gnn.w": torch.zeros(2)}}, tmp_path / "lightning.ckpt")
    files = {
        "encoder": export_encoder(encoder, tmp_path / "enc.pt"),
        "pretrain": pretrain,
        "model": model,
        "bundle": bundle_checkpoints(
            [model, _model_file(tmp_path / "b.ckpt", encoder, "z")], tmp_path / "bu.pt"
        ),
        "ensemble": write_ensemble([model, model], tmp_path / "ens.ckpt"),
        "chemprop": FIXTURES / "chemprop" / "model_v2_norm.pt",
        "state_dict": FIXTURES / "hu2020" / "gcn_contextpred.pth",
    }
    for kind, path in files.items():
        weights = read_weights(path)
        assert weights.kind == kind and weights.path == path, kind
        assert (weights.header is None) == (kind in ("chemprop", "state_dict")), kind
        assert weights.state and all(isinstance(v, torch.Tensor) for v in weights.state.values()), kind
    assert (
        read_weights(FIXTURES / "chemprop" / "foundation_like_mp.pt").kind == "chemprop"
    )  # CheMeleon layout
    nested = read_weights(tmp_path / "lightning.ckpt")
    assert nested.kind == "state_dict" and list(nested.state) == ["gnn.w"] and nested.blob["epoch"] == 3
    # the loaders dispatch on the kind
    assert load_encoder(pretrain).args == encoder.args
    assert load_predictor(files["bundle"]).columns == ["y", "z"]
    assert [m.columns for m in load_models(files["ensemble"])] == [["y"], ["y"]]
    assert load_predictor(files["chemprop"]).columns == ["logS"]  # a Chemprop file is one model


def test_each_loader_names_what_it_was_given(encoder, tmp_path):
    enc = export_encoder(encoder, tmp_path / "enc.pt")
    chemprop = FIXTURES / "chemprop" / "model_v2_norm.pt"
    plain = FIXTURES / "hu2020" / "gcn_contextpred.pth"
    cases = [
        (
            lambda: write_ensemble([enc], tmp_path / "e.ckpt"),
            "enc.pt: a encoder file; an ensemble is made of",
        ),
        (
            lambda: bundle_checkpoints([plain], tmp_path / "b.pt"),
            "a plain state dict file; a bundle is built from",
        ),
        (
            lambda: load_encoder(chemprop),
            "a Chemprop model file, not a molgnn checkpoint; for a Chemprop model file use encoder=chemprop",
        ),
        (lambda: load_encoder(plain), "no molgnn header; for a plain state dict use encoder=state_dict"),
        (
            lambda: load_foreign_encoder("hu2020_gcn", enc),
            "this is a molgnn checkpoint; load it with encoder=pretrained",
        ),
        (
            lambda: load_foreign_encoder("hu2020_gcn", chemprop),
            "not a plain state dict; for a Chemprop model",
        ),
        (lambda: load_state_dict_encoder("gine", enc, default_spec()), "this is a molgnn checkpoint"),
        (lambda: read_chemprop(enc), "enc.pt: not a Chemprop model file"),
        (
            lambda: load_predictor(
                write_ensemble([_model_file(tmp_path / "m.ckpt", encoder)], tmp_path / "x.ckpt")
            ),
            "an ensemble file holds several models; load it with load_models",
        ),
    ]
    for load, message in cases:
        with pytest.raises(CheckpointError, match=message):
            load()


def test_unknown_header_kind_is_refused(encoder, tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"molgnn": make_header("mystery", encoder), "state_dict": {}}, path)
    with pytest.raises(
        CheckpointError, match=r"odd.pt: malformed molgnn header: kind is 'mystery' \(known: enc"
    ):
        read_weights(path)


class _RunsCode:
    """Unpickling this runs ``touch marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _chemprop_named(path: Path, payload, monkeypatch) -> Path:
    """A file naming a chemprop class, as Chemprop's do (fake chemprop modules while saving only)."""
    for name in ("chemprop", "chemprop.nn", "chemprop.nn.agg"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    agg = type("MeanAggregation", (), {"__module__": "chemprop.nn.agg", "__qualname__": "MeanAggregation"})
    sys.modules["chemprop.nn.agg"].MeanAggregation = agg
    torch.save({"hyper_parameters": {"agg": {"cls": agg}, "predictor": payload}, "state_dict": {}}, path)
    for name in ("chemprop.nn.agg", "chemprop.nn", "chemprop"):
        monkeypatch.delitem(sys.modules, name)
    return path


@pytest.mark.parametrize("route", ["molgnn", "plain", "chemprop"])
def test_a_file_that_would_run_code_is_refused_and_never_runs(route, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if route == "chemprop":
        _chemprop_named(path, {"activation": _RunsCode(marker)}, monkeypatch)
    else:
        header = {"molgnn": {"format_version": 1}} if route == "molgnn" else {}
        torch.save(header | {"w": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        read_weights(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "refused: the file would import code" in message and "GLOBAL" in message and "system" in message
    assert not marker.exists(), "the pickle payload ran"
    assert "chemprop" not in sys.modules


def _called(tree: ast.AST) -> list[str]:
    """The dotted name of every call in ``tree`` ("torch.load", "safe_load", "yaml.safe_load")."""

    def name(node) -> str:
        if isinstance(node, ast.Attribute):
            return f"{name(node.value)}.{node.attr}"
        return node.id if isinstance(node, ast.Name) else "?"

    return [name(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_torch_load_is_called_in_one_module_only():
    calls = {
        str(p.relative_to(PACKAGE.parent)): _called(ast.parse(p.read_text()))
        for p in sorted(PACKAGE.rglob("*.py"))
    }
    loads = {m: c.count("torch.load") for m, c in calls.items() if "torch.load" in c}
    assert loads == {"molgnn/storage.py": 1}  # load_torch: weights files (read_weights) and caches alike
    raw = {m for m, c in calls.items() if "safe_load" in c or any(n.endswith("weights.safe_load") for n in c)}
    assert raw == {"molgnn/weights.py"}, "loaders read files with read_weights, not the raw safe_load"


def test_require_equal_spells_out_the_differences():
    spec = default_spec()
    other = replace(
        spec, version=2, atom_features=(FeatureVocab("atomic_num", (6, 7)), *spec.atom_features[1:])
    )
    spec.require_equal(default_spec(), "same")  # equal: nothing raised
    with pytest.raises(ValueError) as err:
        spec.require_equal(other, "enc.pt: featurizer spec differs from the run's")
    assert str(err.value).startswith("enc.pt: featurizer spec differs from the run's: ")
    assert "atom_features[atomic_num].values: " in str(err.value) and "version: 1 != 2" in str(err.value)
    with pytest.raises(CheckpointError, match="^here: ") as err:
        spec.require_equal(other, "here", CheckpointError)
    assert isinstance(err.value, MolgnnError)
    many = replace(
        spec,
        version=9,
        atom_features=tuple(replace(f, name=f"{f.name}_x") for f in spec.atom_features),
        bond_features=tuple(replace(f, name=f"{f.name}_x") for f in spec.bond_features),
    )
    with pytest.raises(ValueError) as err:
        spec.require_equal(many, "many")
    assert str(err.value).count(" != ") == 10  # at most ten fields
