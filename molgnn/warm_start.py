"""Start a run from a trained model: ``init_from=<molgnn-train checkpoint>`` loads that model's encoder and head
weights into the run's freshly built encoder and head before training.

Uses: LP-FT (Kumar et al., ICLR 2022: train a head on the frozen encoder first, then fine-tune everything from
that head, so the first fine-tuning steps do not push a random head's gradients into the pretrained encoder) as
two runs, ``experiment=frozen_head`` and then ``init_from=<its checkpoints/best.ckpt>``; continuing a model on
more data for the same targets. Only weights carry over: optimizer, schedule, epochs and the target scaler start
new (the scaler is refitted on this run's training split).

The run's configuration decides the architecture; the file must match it: same featurizer spec, encoder family
and arguments (dropout aside), head family and arguments, and target names. Any difference is one error that
names the file and the keys.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from molgnn.checkpoint import load_state_strict, read_model_file, sub_state
from molgnn.errors import CheckpointError
from molgnn.featurize.spec import FeaturizerSpec

USE = "init_from takes a molgnn-train checkpoint (a run's checkpoints/best.ckpt)"


def _differences(saved: dict, built: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: file X vs run Y' for every argument that differs (``ignore``d keys aside)."""
    keys = sorted((saved.keys() | built.keys()) - set(ignore))
    return [
        f"{k}: file {saved.get(k)!r} vs run {built.get(k)!r}" for k in keys if saved.get(k) != built.get(k)
    ]


def warm_start(path: str | Path, encoder: nn.Module, head: nn.Module, target_names: list[str]) -> None:
    """Load ``path``'s encoder and head tensors into ``encoder`` / ``head`` (in place, strictly), after
    checking that the file describes the same spec, architecture and targets."""
    where = f"init_from={path}"
    weights = read_model_file(path, USE)
    header = weights.header
    encoder.spec.require_equal(
        FeaturizerSpec.from_dict(header["spec"]),
        f"{where}: featurizer spec differs from the run's",
        CheckpointError,
    )
    saved_encoder, saved_head = header["encoder"], header["heads"][0]
    problems = []
    if saved_encoder["family"] != encoder.family:
        problems.append(f"encoder family: file {saved_encoder['family']!r} vs run {encoder.family!r}")
    else:
        problems += [
            f"encoder.{d}" for d in _differences(saved_encoder["args"], dict(encoder.args), ("dropout",))
        ]
    if saved_head["family"] != head.family:
        problems.append(f"head family: file {saved_head['family']!r} vs run {head.family!r}")
    else:
        problems += [f"head.{d}" for d in _differences(saved_head["args"], dict(head.args))]
    if list(saved_head["target_names"]) != list(target_names):
        problems.append(f"targets: file {list(saved_head['target_names'])} vs run {list(target_names)}")
    if problems:
        raise CheckpointError(
            f"{where}: the model differs from this run's configuration: " + "; ".join(problems)
        )
    load_state_strict(encoder, sub_state(weights.state, "encoder"), where, "encoder")
    load_state_strict(head, sub_state(weights.state, "head"), where, "head")
