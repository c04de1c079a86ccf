"""The one encoder factory: every ``conf/encoder/*.yaml`` and every entry point that needs an encoder calls
``make_encoder``, whatever the encoder comes from.

    path None                    -> ``family`` built from scratch (``spec``: the run's, or the family's own)
    path "installed"             -> the weights a pip package ships (MiniMol)
    path -> molgnn file          -> the encoder inside (family, arguments and spec from its header)
    path -> Chemprop file        -> its message passing (+ aggregation, batch norm)
    path -> plain state dict     -> ``family`` built with the given arguments, the tensors loaded strictly
                                    (published weights: Hu et al. 2020, MolCLR, ...)

The file is read once (``molgnn.weights.read_weights``); its kind, not a config key, decides the route.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from molgnn.checkpoint import load_encoder
from molgnn.chemprop_file import load_chemprop_encoder
from molgnn.errors import CheckpointError, MolgnnError
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.nn import ENCODER_FAMILIES
from molgnn.transfer import load_foreign_encoder, load_state_dict_encoder
from molgnn.weights import MOLGNN_KINDS, read_weights


def make_encoder(
    family: str | None = None,
    path: str | Path | None = None,
    spec: FeaturizerSpec | None = None,
    expect_spec: FeaturizerSpec | None = None,
    dropout: float | None = None,
    readout: str | None = None,
    prefix: str | None = None,
    args: dict | None = None,
    **kwargs,
) -> nn.Module:
    """An encoder from scratch or from any weights file (see the module docstring).

    ``args`` / ``kwargs``: construction arguments (hidden_dim, num_layers, ...) for a scratch or plain
    state-dict encoder. ``dropout``: for a molgnn or Chemprop file, replaces the saved rate (fine-tuning);
    otherwise a construction argument. ``readout``: likewise the atom pooling ("sum+mean"; for a molgnn file
    ``checkpoint.with_readout``). ``expect_spec``: a molgnn file with another featurizer spec is an error
    listing the differences. ``prefix``: take a plain state dict's tensors under "<prefix>.".
    """
    replaced = {k: v for k, v in (("dropout", dropout), ("readout", readout)) if v is not None}
    construction = {**dict(args or {}), **kwargs, **replaced}
    if path is None or path == "installed":
        return _scratch_or_installed(family, path, spec, construction)
    if (
        not Path(path).expanduser().is_file()
        and family in ENCODER_FAMILIES
        and hasattr(ENCODER_FAMILIES[family], "source")
    ):
        return load_foreign_encoder(family, path, **construction)  # names where the published weights live
    weights = read_weights(Path(path).expanduser())
    if weights.kind in MOLGNN_KINDS:
        _same_family(family, weights.header["encoder"]["family"], path)
        return load_encoder(weights, expect_spec, dropout, readout)
    if weights.kind == "chemprop":
        if readout is not None:
            raise CheckpointError(f"{path}: encoder.readout: a Chemprop file keeps its own aggregation")
        return load_chemprop_encoder(weights, dropout)
    if family is None:
        raise MolgnnError(
            f"{path}: a plain state dict does not say its architecture; set encoder.family "
            f"(one of {sorted(ENCODER_FAMILIES)}) and its arguments"
        )
    if hasattr(_family(family), "default_spec") and spec is None:
        return load_foreign_encoder(family, weights, **construction)
    return load_state_dict_encoder(family, weights, spec, construction, prefix)


def _family(family: str | None) -> type[nn.Module]:
    if family not in ENCODER_FAMILIES:
        raise MolgnnError(f"encoder.family: unknown family {family!r}; known: {sorted(ENCODER_FAMILIES)}")
    return ENCODER_FAMILIES[family]


def _scratch_or_installed(
    family: str | None, path: str | None, spec: FeaturizerSpec | None, construction: dict
) -> nn.Module:
    cls = _family(family)
    if hasattr(cls, "default_spec"):  # a published family: its own featurizer, its published layout
        return load_foreign_encoder(family, path, **construction)
    if path == "installed":
        raise MolgnnError(f"encoder.path=installed: family {family!r} ships no weights in a package")
    if spec is None:
        raise MolgnnError(f"encoder.spec is required to build a {family!r} encoder from scratch")
    return cls(spec=spec, **construction)


def _same_family(asked: str | None, found: str, path) -> None:
    if asked is not None and asked != found:
        raise CheckpointError(f"{path}: holds a {found!r} encoder, but encoder.family is {asked!r}")
