"""molgnn-select: checkpoint(s) + candidate SMILES file -> the k candidates to test next, ranked by an
acquisition strategy (molgnn.uncertainty.select) over the predicted mean and spread."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig

from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.errors import MolgnnError
from molgnn.data.table import check_readable
from molgnn.predict import input_columns, parts_dir, predict_file
from molgnn.storage import atomic_write
from molgnn.uncertainty.outputs import ROW_COLUMNS
from molgnn.uncertainty.select import NEEDS_BEST, NEEDS_STD, STRATEGIES, acquisition, rank

log = logging.getLogger("molgnn.select")
OUT_COLUMNS = ("rank", "score", "mean", "std")


def check_settings(cfg: DictConfig) -> str:
    """Config errors that need no prediction, raised before any work; returns the output format."""
    if cfg.strategy not in STRATEGIES:
        raise MolgnnError(f"strategy={cfg.strategy}: unknown; choose one of {', '.join(STRATEGIES)}")
    if cfg.strategy in NEEDS_BEST and cfg.best is None:
        raise MolgnnError(
            f"best: strategy={cfg.strategy} needs the best value observed so far; set best=<value>"
        )
    if not isinstance(cfg.k, int) or cfg.k < 1:
        raise MolgnnError(f"k={cfg.k}: must be an integer >= 1")
    suffix = Path(str(cfg.output_path)).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise MolgnnError(f"output_path={cfg.output_path}: use a .csv or .parquet file name")
    return "csv" if suffix == ".csv" else "parquet"


def target_columns(pred_cols: list[str], target: str | None) -> tuple[str, str | None]:
    """(mean column, std column or None) for ``target`` among the prediction columns: ``<t>`` (single model)
    or ``<t>_mean`` (ensemble), spread ``<t>_std`` when present. Target names are the columns (``_mean``
    stripped) that are not ``<other target>_<suffix>`` (std, interval bounds, domain scores)."""
    bases = list(
        dict.fromkeys(c[:-5] if c.endswith("_mean") else c for c in pred_cols if c not in ROW_COLUMNS)
    )
    names = [b for b in bases if not any(b.startswith(f"{o}_") for o in bases if o != b)]  # not <t>_std etc.
    if target is None:
        if len(names) != 1:
            raise MolgnnError(
                f"target: the model predicts {len(names)} targets ({', '.join(names)}); "
                f"choose one with target=<name>"
            )
        target = names[0]
    if target not in names:
        raise MolgnnError(f"target={target}: not predicted by the model; available: {', '.join(names)}")
    mean_col = f"{target}_mean" if f"{target}_mean" in pred_cols else target
    std_col = f"{target}_std" if f"{target}_std" in pred_cols else None
    return mean_col, std_col


def select(cfg: DictConfig) -> pd.DataFrame:
    """Run the selection a composed ``select`` config describes; returns the written table (k rows)."""
    fmt = check_settings(cfg)
    ckpts = [str(p) for p in cfg.ckpt_path] if isinstance(cfg.ckpt_path, ListConfig) else str(cfg.ckpt_path)
    output = Path(str(cfg.output_path))
    output.parent.mkdir(parents=True, exist_ok=True)
    n_inputs = len(input_columns(check_readable(cfg.input.path), cfg.input.smiles_col))
    tmp_pred = output.parent / f".{output.name}.predictions.parquet"
    try:
        predict_file(
            ckpts,
            cfg.input.path,
            tmp_pred,
            smiles_col=cfg.input.smiles_col,
            output_format="parquet",
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            device=str(cfg.device),
            progress=False,
            torch_threads=cfg.torch_threads,
        )
        frame = pd.read_parquet(tmp_pred)
    finally:
        tmp_pred.unlink(missing_ok=True)
        shutil.rmtree(parts_dir(tmp_pred), ignore_errors=True)
    inputs = list(frame.columns[:n_inputs])  # predict_file: input columns, predictions, valid, error
    pred_cols = list(frame.columns[n_inputs:-2])
    mean_col, std_col = target_columns(pred_cols, cfg.target)
    if cfg.strategy in NEEDS_STD and std_col is None:
        raise MolgnnError(
            f"strategy={cfg.strategy} needs a predicted spread ({mean_col}_std), which "
            f"ckpt_path does not give; use an ensemble (ckpt_path=[a.ckpt,b.ckpt,...]), a model "
            f"trained with uncertainty, or strategy=greedy/random"
        )
    mean = frame[mean_col].to_numpy(np.float64)
    mean[~frame["valid"].to_numpy(bool)] = np.nan  # invalid rows are never selected
    std = frame[std_col].to_numpy(np.float64) if std_col else None
    best = None if cfg.best is None else float(cfg.best)
    picked = rank(
        mean,
        std,
        cfg.strategy,
        int(cfg.k),
        maximize=bool(cfg.maximize),
        beta=float(cfg.beta),
        best=best,
        seed=int(cfg.seed),
    )
    score = acquisition(
        mean,
        std,
        cfg.strategy,
        maximize=bool(cfg.maximize),
        beta=float(cfg.beta),
        best=best,
        seed=int(cfg.seed),
    )
    out = frame.iloc[picked][inputs].rename(columns={c: f"{c}_input" for c in inputs if c in OUT_COLUMNS})
    out = out.assign(
        rank=np.arange(1, len(picked) + 1),
        score=score[picked],
        mean=mean[picked],
        std=std[picked] if std is not None else np.nan,
    ).reset_index(drop=True)
    write_atomic(out, output, fmt)
    n_valid = int(np.isfinite(mean).sum())
    if len(picked) < int(cfg.k):
        log.warning("k=%d but only %d candidates are valid: all of them selected", cfg.k, n_valid)
    spread = f", median std {np.nanmedian(out['std']):.3g}" if std is not None and len(out) else ""
    log.info(
        "%d candidates (%d valid; invalid never selected); %s %s by %s: %d selected -> %s "
        "(predicted %.3g to %.3g%s)",
        len(frame),
        n_valid,
        "maximize" if cfg.maximize else "minimize",
        mean_col,
        cfg.strategy,
        len(out),
        output,
        np.nanmin(out["mean"]) if len(out) else np.nan,
        np.nanmax(out["mean"]) if len(out) else np.nan,
        spread,
    )
    return out


def write_atomic(frame: pd.DataFrame, output: Path, fmt: str) -> None:
    """Write ``frame`` to a temporary name beside ``output``, then rename it into place."""
    atomic_write(
        output,
        lambda tmp: frame.to_csv(tmp, index=False) if fmt == "csv" else frame.to_parquet(tmp, index=False),
    )


@config_errors_as_one_line("molgnn-select")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="select")
@user_errors_as_one_line("molgnn-select")
def main(cfg: DictConfig) -> None:
    select(cfg)


if __name__ == "__main__":
    main()
