"""Inference over a chunk's featurization jobs: every model's ``predict_full`` on each batch, members
combined by ``EnsembleUncertainty`` (``Forward``), and the chunk's output frame (one row per input row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from molgnn.predict.featurize import iter_batches
from molgnn.predictor import Predictor
from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns


class Forward:
    """Every model's forward pass on one featurization job's packed arrays (``featurize_job``), members combined
    by ``EnsembleUncertainty``: ``forward(packed)`` -> values float32 [R, C'] (NaN rows where invalid; columns
    as ``output_columns``). Runs in this process or, on CPU, inside the featurization workers (forked: the
    models are inherited, not pickled; ``featurized_chunks(forward=...)``).
    ``desc_names``: the columns of the jobs' raw descriptors (each model takes its ``descriptor_names``)."""

    def __init__(
        self,
        models: list[Predictor],
        batch_size: int,
        device: torch.device,
        desc_names: list[str] = (),
        uq: EnsembleUncertainty | None = None,
        level: float | None = None,
    ):
        self.models, self.batch_size, self.device, self.level = models, batch_size, device, level
        self.uq = uq or EnsembleUncertainty([None] * len(models))
        self.desc_index = [
            torch.tensor([list(desc_names).index(n) for n in m.descriptor_names], dtype=torch.long)
            for m in models
        ]

    @property
    def forkable(self) -> bool:
        """True on CPU: the pass may run inside forked featurization workers (CUDA cannot be used there)."""
        return self.device.type == "cpu"

    def __call__(self, packed: dict) -> np.ndarray:
        outs: list[dict[str, list]] = [{} for _ in self.models]
        for batch in iter_batches(packed, self.batch_size):
            batch = batch.to(self.device, non_blocking=True)
            desc = batch.desc
            for m, model in enumerate(self.models):
                batch.desc = desc[:, self.desc_index[m].to(desc.device)]
                for key, value in model.predict_full(batch, similarity=self.uq.calibrated).items():
                    outs[m].setdefault(key, []).append(value.float().cpu().numpy())
        if outs[0]:
            out = self.uq.values([{k: np.concatenate(v) for k, v in o.items()} for o in outs], self.level)
        else:
            columns = output_columns(self.models[0].columns, len(self.models) > 1, self.uq.calibrated)
            out = np.zeros((0, len(columns)))
        full = np.full((len(packed["valid"]), out.shape[1]), np.nan, dtype=np.float32)
        full[packed["valid"]] = out
        return full


def predict_jobs(forward: Forward, jobs: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A chunk's featurization jobs (``.get()`` -> packed arrays, taken in order, so job j is predicted while
    the workers featurize later ones; or already predicted in a worker: its ``values``) -> values float32
    [R, C'], valid bool [R], errors list[str] (R)."""
    values, valid, errors = [], [], []
    for job in jobs:
        packed = job.get()
        values.append(packed["values"] if "values" in packed else forward(packed))
        valid.append(packed["valid"])
        errors += packed["errors"]
    return np.concatenate(values), np.concatenate(valid), errors


def output_frame(
    frame: pd.DataFrame, pred_cols: list[str], values: np.ndarray, valid: np.ndarray, errors: list[str]
) -> pd.DataFrame:
    """Carried input columns (renamed ``<name>_input`` when they clash with an output column), then one
    column per prediction, ``valid`` and ``error``."""
    out = frame.rename(columns={c: _carried_name(c, pred_cols) for c in frame.columns})
    out = out.reset_index(drop=True)
    for j, col in enumerate(pred_cols):
        out[col] = values[:, j]
    if "in_domain" in out.columns:  # 1/0/NaN -> True/False/missing
        out["in_domain"] = pd.array(
            np.where(
                np.isnan(values[:, pred_cols.index("in_domain")]),
                None,
                values[:, pred_cols.index("in_domain")] == 1,
            ),
            dtype="boolean",
        )
    out["valid"] = valid
    out["error"] = errors
    return out


def frame_columns(carried: list[str], pred_cols: list[str]) -> list[str]:
    """The output's columns, as ``output_frame`` writes them: carried input columns, then ``pred_cols``
    (``output_columns``), ``valid`` and ``error``."""
    return [_carried_name(c, pred_cols) for c in carried] + pred_cols + ["valid", "error"]


def _carried_name(column: str, pred_cols: list[str]) -> str:
    """An input column keeps its name unless an output column has it: then ``<name>_input``."""
    return f"{column}_input" if column in (*pred_cols, "valid", "error") else column
