"""molgnn-pretrain: Hydra config -> unlabeled corpus + encoder + objectives -> Lightning fit -> encoder.pt."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from molgnn.checkpoint import export_encoder
from molgnn.cli import (
    CONF_DIR,
    build_callbacks,
    build_loggers,
    config_errors_as_one_line,
    prepare_run_dir,
    user_errors_as_one_line,
)
from molgnn.tasks.pretrain import PretrainContext, PretrainTask, node_width

log = logging.getLogger("molgnn.pretrain")


def build_objectives(cfg: DictConfig, context: PretrainContext) -> tuple[dict, dict]:
    """``pretrain.objectives`` -> (name -> module, name -> weight); weight-0 objectives are skipped."""
    modules, weights = {}, {}
    for name, entry in cfg.pretrain.objectives.items():
        if float(entry.weight) > 0:
            modules[name] = instantiate(entry.module)(context=context)
            weights[name] = float(entry.weight)
    return modules, weights


def pretrain(cfg: DictConfig, out_dir: Path | str | None = None) -> dict:
    """Run one pretraining job into ``out_dir`` (default ``cfg.paths.output_dir``); returns a summary dict
    and writes ``encoder.pt``, ``checkpoints/last.ckpt``, ``pretrain_summary.json``."""
    cfg, out_dir = prepare_run_dir(cfg, out_dir)
    encoder = instantiate(cfg.encoder)
    datamodule = instantiate(cfg.data)(spec=encoder.spec)
    datamodule.setup("fit")
    context = PretrainContext(
        dim=encoder.out_dim,
        spec=encoder.spec,
        num_descriptors=datamodule.num_descriptors,
        num_teacher=datamodule.num_teacher,
        node_dim=node_width(encoder),
    )
    objectives, weights = build_objectives(cfg, context)
    task = PretrainTask(
        encoder,
        objectives,
        weights,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        info=datamodule.info(),
    )
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    trainer.save_checkpoint(
        out_dir / "checkpoints" / "last.ckpt"
    )  # full state (Lightning default): resumable
    header = task.pretraining_header()
    if cfg.encoder.get("path"):  # continued pretraining: the starting encoder is part of the provenance
        header["initialized_from"] = str(cfg.encoder.path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    header["final_metrics"] = {
        k: round(v, 5) for k, v in sorted(metrics.items()) if k.endswith("_epoch") or k.startswith("val/")
    }
    if trainer.is_global_zero:
        export_encoder(task.encoder, out_dir / "encoder.pt", pretraining=header)
        (out_dir / "pretrain_summary.json").write_text(json.dumps(header, indent=2))
    log.info(
        "pretrained %s for %d steps (%d epochs) on %d molecules; encoder: %s",
        encoder.family,
        header["steps"],
        header["epochs"],
        datamodule.num_molecules,
        out_dir / "encoder.pt",
    )
    return header


@config_errors_as_one_line("molgnn-pretrain")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="pretrain")
@user_errors_as_one_line("molgnn-pretrain")
def main(cfg: DictConfig) -> float | None:
    header = pretrain(cfg, HydraConfig.get().runtime.output_dir)
    return header["final_metrics"].get("val/loss")


if __name__ == "__main__":
    main()
