"""Trained models for prediction: a checkpoint (molgnn-train ``.ckpt``) or a bundle (molgnn-bundle) ->
``Predictor`` (one encoder + N heads, predictions in original units), and ensembles of several files.

Files are read by ``molgnn.weights.read_weights`` (``weights_only=True``) and dispatched on their kind;
the featurizer spec comes from the header, never from tensor widths.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from molgnn.chemprop_file import chemprop_predictor
from molgnn.data.scaler import TargetScaler
from molgnn.checkpoint import load_state_strict, loaded_encoder, loaded_head, sub_state
from molgnn.errors import CheckpointError
from molgnn.featurize.descriptors import DescriptorScaler
from molgnn.featurize.spec import FeaturizerSpec
from molgnn.uncertainty.domain import DomainIndex
from molgnn.weights import WeightsFile, read_weights

log = logging.getLogger(__name__)


class Predictor(nn.Module):
    """encoder(batch) -> h [B, d]; t_i^-1(head_i([h || desc_i]) * std_i + mean_i) -> float [B, sum_i T_i]
    (``t_i``: the head's target transform, identity for files without one).

    ``columns``: one output column name per predicted value (the target names; ``<head>/<target>`` when
    two heads share a target name); ``qualified_columns``: always ``<head>/<target>``. Heads trained with
    RDKit descriptors (``descriptor_scalers[i]`` not None) read ``batch.desc``: float [B,
    len(descriptor_names)] raw descriptor values (NaN where missing), which are standardized here with each
    head's own scaler (``DescriptorScaler.transform``, the same computation as for the training data).
    """

    def __init__(
        self,
        encoder: nn.Module,
        heads: list[nn.Module],
        head_headers: list[dict],
        path: str = "",
        domain: nn.Module | None = None,
    ):
        super().__init__()
        self.path, self.encoder, self.heads = path, encoder, nn.ModuleList(heads)
        self.domain = domain  # DomainIndex of the training molecules (calibrated model files), else None
        self.head_headers = head_headers
        # each head's target scaler (+ transform), from the header; a plain list, so not part of the state dict
        self.target_scalers = [TargetScaler.from_dict(h["scaler"]) for h in head_headers]
        self.descriptor_scalers = [
            DescriptorScaler.from_dict(h["descriptors"]) if h.get("descriptors") else None
            for h in head_headers
        ]
        self.qualified_columns = [
            f"{h.get('name') or f'head{i}'}/{t}"
            for i, h in enumerate(head_headers)
            for t in h["target_names"]
        ]
        names = [t for h in head_headers for t in h["target_names"]]
        self.columns = names if len(set(names)) == len(names) else self.qualified_columns
        self.descriptor_names = sorted({n for s in self.descriptor_scalers if s is not None for n in s.names})
        # each head's scaler reading the columns of batch.desc (descriptor_names) instead of its training table's
        self._batch_scalers = [
            s.for_columns(self.descriptor_names) if s is not None else None for s in self.descriptor_scalers
        ]

    @property
    def spec(self) -> FeaturizerSpec:
        return self.encoder.spec

    @property
    def needs_descriptors(self) -> bool:
        return any(s is not None for s in self.descriptor_scalers)

    @property
    def calibration(self) -> dict | None:
        """The calibration record of a single-head model with a domain index (None otherwise)."""
        if self.domain is None or len(self.head_headers) != 1:
            return None
        return self.head_headers[0].get("calibration")

    @torch.inference_mode()
    def predict_batch(self, batch) -> torch.Tensor:
        """PyG batch of B graphs -> float [B, len(columns)] in original units."""
        return self.predict_full(batch)["mean"]

    @torch.inference_mode()
    def predict_full(self, batch, similarity: bool = False) -> dict[str, torch.Tensor]:
        """PyG batch -> {"mean": [B, C], "var": [B, C] (NaN for heads without a variance output), and with a
        domain index "distance": [B] (k-NN embedding distance) and, when ``similarity`` and ``batch.fp``
        (packed Morgan bits) are given, "similarity": [B] (largest Tanimoto to a training molecule)}."""
        h = self.encoder(batch)
        means, variances = [], []
        for i, (head, scaler) in enumerate(zip(self.heads, self._batch_scalers)):
            x = h if scaler is None else torch.cat([h, scaler.transform(batch.desc).to(h.dtype)], 1)
            out, scale = head(x).float(), self.target_scalers[i].to(h.device)
            std = scale.std
            if self.head_headers[i].get("variance"):
                out, raw = out.chunk(2, dim=1)
                variances.append((torch.nn.functional.softplus(raw) + 1e-6) * std**2)
            else:
                variances.append(torch.full_like(out, float("nan")))
            means.append(scale.inverse(out))  # original units: standardization and transform undone
        result = {"mean": torch.cat(means, dim=1), "var": torch.cat(variances, dim=1)}
        if self.domain is not None:
            result["distance"] = self.domain.distance(h)
            if similarity and getattr(batch, "fp", None) is not None:
                result["similarity"] = self.domain.similarity(batch.fp)
        return result


def load_predictor(path: str | Path) -> Predictor:
    """Load a molgnn-train checkpoint (kind "model"), a molgnn-bundle file (kind "bundle") or a Chemprop 2.x
    model file in eval mode.

    Raises ``CheckpointError`` (one line naming the file) for anything unusable: not a torch file, pickled
    objects, no molgnn header, an encoder-only file, unknown families, missing or mis-shaped tensors.
    """
    weights = read_weights(path)
    if weights.kind == "ensemble":
        raise CheckpointError(f"{path}: an ensemble file holds several models; load it with load_models")
    return _models_in(weights)[0]


def load_models(path: str | Path) -> list[Predictor]:
    """The models in one file: one for a model or bundle, every member for an ensemble file
    (``molgnn-train uncertainty=ensemble``: header ``members`` [M headers], tensors ``members.<i>.*``).
    A Chemprop 2.x model file is one model (``molgnn.chemprop_file``: read without running its code)."""
    return _models_in(read_weights(path))


def _models_in(weights: WeightsFile) -> list[Predictor]:
    """Every model a file holds, dispatched on its kind."""
    path = weights.path
    if weights.kind == "chemprop":
        return [chemprop_predictor(weights)]
    header = weights.molgnn_header()
    if weights.kind != "ensemble":
        return [_predictor_from(header, weights.state, str(path))]
    members = header.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise CheckpointError(f"{path}: malformed molgnn header: an ensemble needs a non-empty members list")
    return [
        _predictor_from(m, sub_state(weights.state, f"members.{i}"), f"{path}[member {i}]")
        for i, m in enumerate(members)
    ]


def _predictor_from(header: dict, state: dict, path: str) -> Predictor:
    """Build and strictly load a ``Predictor`` from a model/bundle header and its tensors."""
    kind = header.get("kind")
    if kind not in ("model", "bundle"):
        raise CheckpointError(
            f"{path}: a {kind!r} file has no property heads; molgnn-predict needs a "
            "molgnn-train checkpoint (.ckpt) or a molgnn-bundle file"
        )
    heads_info = header.get("heads") or []
    if not heads_info:
        raise CheckpointError(f"{path}: the header lists no heads")
    if kind == "model" and len(heads_info) != 1:
        raise CheckpointError(
            f"{path}: a model checkpoint must have exactly one head, found {len(heads_info)}"
        )
    prefixes = ["head"] if kind == "model" else [f"heads.{i}" for i in range(len(heads_info))]
    try:
        encoder = loaded_encoder(header, state, path)
        heads = [
            loaded_head(h, sub_state(state, prefix), path, f"head {i} ({h.get('name')})")
            for i, (h, prefix) in enumerate(zip(heads_info, prefixes))
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed molgnn header: {type(exc).__name__}: {exc}") from None
    domain = _domain_index(heads_info[0], sub_state(state, "domain"), path) if kind == "model" else None
    model = Predictor(encoder, heads, heads_info, path, domain).eval()
    log.info(
        "loaded %s: %s encoder, %d head(s) -> %s", path, encoder.family, len(heads), ", ".join(model.columns)
    )
    return model


def _domain_index(head_info: dict, state: dict, path: str) -> DomainIndex | None:
    """The training molecules' domain index stored with a calibrated model (None when it has none)."""
    if not state:
        return None
    k = head_info.get("calibration", {}).get("settings", {}).get("domain_k", 5)
    domain = DomainIndex.like(state, int(k))
    load_state_strict(domain, state, path, "domain index")
    return domain


def load_ensemble(paths: list[str | Path]) -> list[Predictor]:
    """Load one or more checkpoints (an ensemble file counts as its members); every member must share the featurizer spec and the output columns
    (an error lists the differences), so their predictions can be averaged."""
    if not paths:
        raise CheckpointError("no checkpoint given (ckpt_path=model.ckpt or ckpt_path=[a.ckpt,b.ckpt])")
    members = [m for p in paths for m in load_models(p)]
    ref = members[0]
    for m in members[1:]:
        ref.spec.require_equal(
            m.spec,
            f"{m.path}: featurizer spec differs from {ref.path}'s, so they cannot form an ensemble",
            CheckpointError,
        )
        if m.columns != ref.columns:
            raise CheckpointError(
                f"{m.path}: predicts {m.columns}, but {ref.path} predicts {ref.columns}; "
                "ensemble members must predict the same targets"
            )
    return members
