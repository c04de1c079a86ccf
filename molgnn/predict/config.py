"""The schema of ``conf/predict.yaml``: ``PredictConfig`` (``input``: ``InputConfig``), registered in Hydra's
ConfigStore as ``predict_schema`` and listed first in that file's defaults, so a value of the wrong type
(``chunk_rows=abc``) or an unknown key (``chunk_row=5``) fails when Hydra composes the config, before any
model or file is opened. ``predict_arguments`` turns a composed config into ``predict_file``'s keywords."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

SCHEMA = "predict_schema"


@dataclass
class InputConfig:
    """The SMILES file: ``path`` (.csv/.tsv with a header, .smi/.txt, optionally .gz), ``smiles_col``."""

    path: Any = MISSING  # a file, a glob pattern or a list of them (a file set: output_path is then a folder)
    smiles_col: str = "smiles"


@dataclass
class ClusterConfig:
    """Dask execution (``molgnn.predict.cluster``): ``scheduler`` (address of a running cluster) or
    ``local_workers`` (start a LocalCluster); both unset: this machine only."""

    scheduler: str | None = None
    local_workers: int = 0
    retries: int = 2


@dataclass
class PredictConfig:
    """Every key of ``conf/predict.yaml`` with its type and default (comments there). ``ckpt_path``: one
    path or a list of them (an ensemble), hence ``Any`` (``input.path`` likewise: a file set); ``rank`` / ``world_size`` are interpolations of
    RANK / WORLD_SIZE decoded to int (checked as int when read)."""

    task_name: str = "predict"
    ckpt_path: Any = MISSING
    input: InputConfig = field(default_factory=InputConfig)
    output_path: str = MISSING
    output_format: str | None = None
    chunk_rows: int = 10000
    batch_size: int | None = None
    num_workers: int | None = None
    device: str = "auto"
    torch_threads: int | None = None
    resume: bool = False
    progress: bool = True
    rank: int = 0
    world_size: int = 1
    shard_timeout_s: float = 86400.0
    uncertainty_columns: bool = True  # predict_file(uncertainty=...); `uncertainty` is a train config group
    interval_level: float | None = None
    cluster: ClusterConfig | None = field(default_factory=ClusterConfig)


ConfigStore.instance().store(name=SCHEMA, node=PredictConfig)
_NOT_ARGUMENTS = (
    "task_name",
    "ckpt_path",
    "input",
    "cluster",
)  # no keyword of predict_file, or one it takes as is


def predict_arguments(cfg: DictConfig) -> dict[str, Any]:
    """A composed (schema-checked) predict config -> ``predict_file`` keyword arguments (plain Python values;
    ``ckpt_path`` a str or list[str])."""
    ckpt = [str(p) for p in cfg.ckpt_path] if isinstance(cfg.ckpt_path, ListConfig) else str(cfg.ckpt_path)
    path = [str(p) for p in cfg.input.path] if isinstance(cfg.input.path, ListConfig) else str(cfg.input.path)
    values = {f.name: cfg[f.name] for f in fields(PredictConfig) if f.name not in _NOT_ARGUMENTS}
    values["uncertainty"] = values.pop("uncertainty_columns")
    cluster = OmegaConf.to_container(cfg.cluster) if cfg.get("cluster") is not None else None
    return {
        **values,
        "ckpt_path": ckpt,
        "input_path": path,
        "smiles_col": cfg.input.smiles_col,
        "cluster": cluster,
    }
