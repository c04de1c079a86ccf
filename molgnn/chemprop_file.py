"""Chemprop 2.x model files, read without running any code, as molgnn encoders and predictors.

A Chemprop file (``chemprop train`` -> ``model_0/best.pt`` or its Lightning ``.ckpt``) is a torch pickle
``{"hyper_parameters": AttributeDict, "state_dict": tensors, "output_columns": [...]}`` whose hyper-parameters
name classes: lightning's ``AttributeDict``, chemprop's message passing / aggregation / predictor classes
(as class objects), ``GraphTransform`` / ``UnscaleTransform`` modules, torch activation modules and, with a
loss function, a torchmetrics metric with two of its functions. Chemprop loads it with an unrestricted
unpickler (whatever the file names is imported and run).

molgnn reads it with ``torch.load(weights_only=True)`` (``molgnn.weights.read_weights``, which recognises
the file with ``is_chemprop_file``) where each allow-listed
``module.name`` resolves to an inert stand-in (``Stand`` records: constructor arguments and pickled state,
no behaviour; ``AttributeDict`` is a plain dict). Nothing the file names is imported or called; any other
global is refused with a one-line ``CheckpointError`` naming it. The records are then read as data: the
widths, depth, activation, aggregation and scaler become a ``ChempropEncoder`` / ``ChempropFFN`` built by
molgnn, and the tensors load strictly. CheMeleon's ``chemeleon_mp.pt`` (``{"hyper_parameters": primitives,
"state_dict": BondMessagePassing tensors}``; Chemprop pairs it with mean aggregation) reads the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from molgnn.checkpoint import encoder_fingerprint, load_state_strict
from molgnn.chemprop_pickle import STAND_INS, Stand, is_chemprop_file  # noqa: F401 (re-exported)
from molgnn.errors import CheckpointError
from molgnn.featurize.chemprop import mode_for_widths
from molgnn.nn.chemprop import ChempropEncoder, ChempropFFN
from molgnn.weights import WeightsFile, as_weights


_NAMED_ACTIVATIONS = {
    "relu": ("ReLU", {}),
    "leakyrelu": ("LeakyReLU", {"negative_slope": 0.1}),
    "prelu": ("PReLU", {}),
    "tanh": ("Tanh", {}),
    "elu": ("ELU", {}),
    "selu": ("SELU", {}),
}


@dataclass
class ChempropModel:
    """What a Chemprop file holds, as molgnn construction arguments and tensors. ``head_args`` is None for a
    message-passing-only file; ``scaler``: {"mean": [T], "std": [T]}."""

    encoder_args: dict
    encoder_state: dict
    head_args: dict | None
    head_state: dict
    scaler: dict
    target_names: list[str]
    predictor: str


def _qualname(obj) -> str:
    """The name a stand-in stands for ("chemprop.nn.agg.MeanAggregation"); a string as is."""
    if isinstance(obj, str):
        return obj
    return getattr(obj, "qualname", obj.__name__ if isinstance(obj, type) else type(obj).__name__)


def _activation(value, path) -> tuple[str, dict]:
    """A pickled activation (torch module stand-in, chemprop ``Activation`` or a string) -> (name, args)."""
    if isinstance(value, Stand) and value.qualname == "chemprop.nn.utils.Activation":
        value = value.args[0] if value.args else ""
    if isinstance(value, str):
        if value.lower() not in _NAMED_ACTIVATIONS:
            raise CheckpointError(f"{path}: activation {value!r} is not supported")
        return _NAMED_ACTIVATIONS[value.lower()]
    if isinstance(value, Stand) and value.qualname.startswith("torch.nn.modules.activation."):
        args = {
            k: v
            for k, v in vars(value).items()
            if not k.startswith("_") and k not in ("training", "inplace", "args", "init")
        }
        return value.qualname.rsplit(".", 1)[1], args
    raise CheckpointError(f"{path}: cannot read the activation ({_qualname(value)})")


def _encoder_args(mp: dict, path, aggregation: str, norm: float, batch_norm: bool) -> dict:
    cls = _qualname(mp.get("cls", "BondMessagePassing"))
    if not cls.endswith("BondMessagePassing"):
        raise CheckpointError(
            f"{path}: message passing {cls} is not supported (molgnn reproduces Chemprop's "
            "BondMessagePassing on single molecules)"
        )
    if mp.get("d_vd") or mp.get("V_d_transform") is not None:
        raise CheckpointError(
            f"{path}: the model uses extra atom descriptors (d_vd), which molgnn does not compute"
        )
    try:
        mode = mode_for_widths(int(mp.get("d_v", 72)), int(mp.get("d_e", 14)))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    name, args = _activation(mp.get("activation", "relu"), path)
    return dict(
        mode=mode,
        hidden_dim=int(mp.get("d_h", 300)),
        depth=int(mp.get("depth", 3)),
        bias=bool(mp.get("bias", False)),
        dropout=float(mp.get("dropout", 0.0)),
        activation=name,
        activation_args=args,
        undirected=bool(mp.get("undirected", False)),
        aggregation=aggregation,
        norm=float(norm),
        batch_norm=bool(batch_norm),
    )


def read_chemprop(path: str | Path) -> ChempropModel:
    """Read a Chemprop 2.x model file (or a CheMeleon-style message-passing file) without running its code."""
    return chemprop_model(_chemprop_weights(path))


def _chemprop_weights(path: str | Path) -> WeightsFile:
    """``read_weights`` of a file that must be a Chemprop file."""
    weights = as_weights(path)
    if weights.kind != "chemprop":
        raise CheckpointError(
            f"{path}: not a Chemprop model file (a {weights.kind} file, no Chemprop hyper_parameters)"
        )
    return weights


def chemprop_model(weights: WeightsFile) -> ChempropModel:
    """What a Chemprop file (``read_weights`` kind "chemprop") holds, read as data."""
    path, blob, state = weights.path, weights.blob, weights.state
    hp = blob["hyper_parameters"]
    if "message_passing" not in hp:  # CheMeleon layout: the message passing alone, mean aggregation
        args = _encoder_args(hp, path, "mean", 100.0, False)
        return ChempropModel(
            args,
            {f"message_passing.{k}": v for k, v in state.items()},
            None,
            {},
            {"mean": [], "std": []},
            [],
            "none",
        )
    extra = sorted(
        k
        for k in state
        if k.startswith(("message_passing.graph_transform.", "message_passing.V_d", "X_d_transform."))
    )
    if extra:
        raise CheckpointError(
            f"{path}: the model scales extra atom/bond/molecule features ({extra[0]}, ...), "
            "which molgnn does not compute"
        )
    agg = hp["agg"]
    kind = _qualname(agg.get("cls")).rsplit(".", 1)[-1].replace("Aggregation", "").lower()
    if kind not in ("mean", "sum", "norm"):
        raise CheckpointError(f"{path}: aggregation {kind!r} is not supported (mean, sum, norm)")
    args = _encoder_args(
        hp["message_passing"], path, kind, agg.get("norm", 100.0), hp.get("batch_norm", False)
    )
    enc_state = {k: v for k, v in state.items() if k.startswith(("message_passing.", "bn."))}
    pred = hp["predictor"]
    if int(pred.get("input_dim", args["hidden_dim"])) != args["hidden_dim"]:
        raise CheckpointError(
            f"{path}: the predictor reads {pred['input_dim']} inputs, the fingerprint has "
            f"{args['hidden_dim']}: extra molecule descriptors (X_d) are not supported"
        )
    hidden = pred.get("hidden_dim", 300)
    hidden = (
        [int(hidden)] * int(pred.get("n_layers", 1)) if isinstance(hidden, int) else [int(h) for h in hidden]
    )
    head_state = {k[len("predictor.") :]: v for k, v in state.items() if k.startswith("predictor.ffn.")}
    out_dim = int(head_state[f"ffn.{len(hidden)}.{0 if not hidden else 2}.bias"].numel())
    name, act_args = _activation(pred.get("activation", "relu"), path)
    head_args = dict(
        in_dim=args["hidden_dim"],
        out_dim=out_dim,
        hidden_dims=hidden,
        dropout=float(pred.get("dropout", 0.0)),
        activation=name,
        activation_args=act_args,
    )
    mean, scale = state.get("predictor.output_transform.mean"), state.get("predictor.output_transform.scale")
    scaler = (
        {"mean": mean.flatten().tolist(), "std": scale.flatten().tolist()}
        if mean is not None and scale is not None
        else {"mean": [0.0] * out_dim, "std": [1.0] * out_dim}
    )
    names = blob.get("output_columns")
    names = (
        [str(n) for n in names]
        if isinstance(names, list) and len(names) == out_dim
        else [f"task_{i}" for i in range(out_dim)]
    )
    return ChempropModel(args, enc_state, head_args, head_state, scaler, names, _qualname(pred.get("cls")))


def _encoder(model: ChempropModel, path, dropout: float | None) -> ChempropEncoder:
    args = dict(model.encoder_args) | ({} if dropout is None else {"dropout": float(dropout)})
    encoder = ChempropEncoder(**args)
    load_state_strict(encoder, model.encoder_state, path, "chemprop encoder")
    encoder.pretraining = {"source": "chemprop", "file": Path(path).name}
    return encoder


def load_chemprop_encoder(path: str | Path | WeightsFile, dropout: float | None = None) -> ChempropEncoder:
    """``encoder=chemprop``: the message passing + aggregation (+ batch norm) of a Chemprop file.
    ``dropout`` replaces the file's rate (fine-tuning); None keeps it."""
    weights = _chemprop_weights(path)
    return _encoder(chemprop_model(weights), weights.path, dropout)


def load_chemprop_predictor(path: str | Path):
    """A whole Chemprop regression model as a molgnn ``Predictor`` (Chemprop's predictions, unscaled)."""
    return chemprop_predictor(_chemprop_weights(path))


def chemprop_predictor(weights: WeightsFile):
    """``load_chemprop_predictor`` of a file already read (``read_weights`` kind "chemprop")."""
    from molgnn.predictor import Predictor

    path, model = weights.path, chemprop_model(weights)
    if model.head_args is None:
        raise CheckpointError(
            f"{path}: a message-passing-only file has no predictor; use it as an encoder "
            "(molgnn-train encoder=chemprop encoder.path=...)"
        )
    if not model.predictor.endswith("RegressionFFN"):
        raise CheckpointError(
            f"{path}: {model.predictor} models are not supported by molgnn-predict (regression "
            "only); the encoder imports with encoder=chemprop"
        )
    encoder = _encoder(model, path, None).eval()
    head = ChempropFFN(**model.head_args)
    load_state_strict(head, model.head_state, path, "chemprop predictor")
    info = {
        "name": "chemprop",
        "family": ChempropFFN.family,
        "args": dict(head.args),
        "target_names": model.target_names,
        "scaler": model.scaler,
        "encoder_fingerprint": encoder_fingerprint(encoder),
    }
    return Predictor(encoder, [head], [info], str(path)).eval()
