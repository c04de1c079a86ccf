"""Inference over a chunk's featurization jobs: every model's ``predict_full`` on each batch, members
combined by ``EnsembleUncertainty``, and the chunk's output frame (one row per input row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from molgnn.predict.featurize import iter_batches
from molgnn.predictor import Predictor
from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns


def predict_jobs(
    models: list[Predictor],
    jobs: list,
    batch_size: int,
    device: torch.device,
    desc_names: list[str] = (),
    uq: EnsembleUncertainty | None = None,
    level: float | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Predict a chunk's featurization jobs (``.get()`` -> packed arrays, taken in order, so job j is
    predicted while the workers featurize later ones) -> values float32 [R, C'] (NaN rows where invalid;
    columns as ``output_columns``), valid bool [R], errors list[str] (R).
    ``desc_names``: the columns of the jobs' raw descriptors (each model takes its ``descriptor_names``)."""
    desc_index = [
        torch.tensor([list(desc_names).index(n) for n in m.descriptor_names], dtype=torch.long)
        for m in models
    ]
    uq = uq or EnsembleUncertainty([None] * len(models))
    values, valid, errors = [], [], []
    for job in jobs:
        packed = job.get()
        outs: list[dict[str, list]] = [{} for _ in models]
        for batch in iter_batches(packed, batch_size):
            batch = batch.to(device, non_blocking=True)
            desc = batch.desc
            for m, model in enumerate(models):
                batch.desc = desc[:, desc_index[m].to(desc.device)]
                for key, value in model.predict_full(batch, similarity=uq.calibrated).items():
                    outs[m].setdefault(key, []).append(value.float().cpu().numpy())
        if outs[0]:
            out = uq.values([{k: np.concatenate(v) for k, v in o.items()} for o in outs], level)
        else:
            out = np.zeros((0, len(output_columns(models[0].columns, len(models) > 1, uq.calibrated))))
        full = np.full((len(packed["valid"]), out.shape[1]), np.nan, dtype=np.float32)
        full[packed["valid"]] = out
        values.append(full)
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
