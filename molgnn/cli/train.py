"""molgnn-train: Hydra config -> DataModule + encoder + head -> Lightning fit -> test the best checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from molgnn.cli import (
    CONF_DIR,
    build_callbacks,
    build_loggers,
    config_errors_as_one_line,
    prepare_run_dir,
    user_errors_as_one_line,
)
from molgnn.cli.report import clean_metrics, parity_plot, write_invalid_rows, write_json, write_predictions
from molgnn.cli.calibration_report import calibrate_run
from molgnn.cli.diagnose import diagnose_run
from molgnn.cli.sweep import objective
from molgnn.data.target_transform import report as transform_report
from molgnn.errors import MolgnnError
from molgnn.tasks.embeddings import maybe_precompute
from molgnn.tasks.timing import EpochTimer
from molgnn.warm_start import warm_start
from molgnn.uncertainty.settings import UncertaintySettings

log = logging.getLogger("molgnn.train")


def train(cfg: DictConfig, out_dir: Path | str | None = None) -> dict[str, float]:
    """Run one training job and write its outputs into ``out_dir`` (default ``cfg.paths.output_dir``; when
    given it replaces that key, so checkpoints and logs land there too). Returns the metrics dict."""
    cfg, out_dir = prepare_run_dir(cfg, out_dir)
    if cfg.get("uncertainty") and cfg.uncertainty.method == "ensemble":
        from molgnn.cli.ensemble import train_ensemble

        return train_ensemble(cfg, out_dir, train)
    encoder = instantiate(cfg.encoder)
    uncertainty = (
        instantiate(cfg.uncertainty) if cfg.get("uncertainty") else UncertaintySettings(method="none")
    )
    # objects are passed to the partial, not to instantiate (which would turn them into configs); Morgan bits
    # come from the same parse as the graphs, only when calibration will use them (applicability domain)
    _refuse_transformed_variance(cfg, uncertainty)
    _refuse_consistency_without_pairs(cfg)
    datamodule = instantiate(cfg.data, _partial_=True)(
        split=instantiate(cfg.split), spec=encoder.spec, fingerprints=uncertainty.method != "none"
    )
    datamodule.setup("fit")
    write_invalid_rows(datamodule.invalid_rows, out_dir, datamodule.path)
    num_desc = getattr(datamodule, "num_descriptors", 0)  # data.descriptors=true: head sees [h || desc]
    out_dim = datamodule.num_targets * (2 if uncertainty.mve else 1)  # mve: mean and variance per target
    head = instantiate(cfg.head)(in_dim=encoder.out_dim + num_desc, out_dim=out_dim)
    if cfg.get("init_from"):  # LP-FT / continued training: start from a trained model's weights
        warm_start(cfg.init_from, encoder, head, datamodule.target_names)
    task = instantiate(cfg.task)(
        encoder=encoder,
        head=head,
        scaler=datamodule.scaler,
        target_names=datamodule.target_names,
        uncertainty=uncertainty,
        **({"descriptor_scaler": datamodule.descriptor_scaler} if num_desc else {}),
    )
    datamodule = maybe_precompute(task, datamodule)  # task.precompute_embeddings: head trains on tensors
    timer = EpochTimer()
    loggers = build_loggers(cfg)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*build_callbacks(cfg, has_logger=bool(loggers)), timer],
        logger=loggers or False,
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    best = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    # validate loads the best weights into `task` (once); test and predict then run on those same weights
    val = trainer.validate(task, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    test = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    metrics = clean_metrics(
        {k: v for k, v in val.items() if not k.endswith("loss")},
        {k: v for k, v in test.items() if not k.endswith("loss")},
    )
    metrics.update(epochs=trainer.current_epoch, **timer.summary(), **getattr(datamodule, "timings", {}))
    metrics.update(
        calibrate_run(
            task, datamodule, uncertainty, best and trainer.checkpoint_callback.best_model_path, out_dir
        )
    )
    metrics.update(
        transform_report(datamodule.scaler.transforms, datamodule.transform_scores, datamodule.target_names)
    )
    metrics.update(diagnose_run(task, datamodule, out_dir, cfg.get("diagnostics_molecules", 0)))
    write_json(metrics, out_dir / "metrics.json")
    _write_test_predictions(trainer, task, datamodule, out_dir)
    log.info("test metrics: %s", {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/") and v})
    return metrics


def _refuse_transformed_variance(cfg: DictConfig, uncertainty: UncertaintySettings) -> None:
    """An MVE head's variance is in transformed units, which molgnn does not map back: refused in one line."""
    setting = cfg.data.get("target_transform")
    kinds = setting if isinstance(setting, ListConfig | list) else [setting]
    if uncertainty.mve and any(k not in (None, "none") for k in kinds):
        raise MolgnnError(
            f"uncertainty.method=mve with data.target_transform={setting}: the predicted variance would be in "
            "transformed units; use uncertainty=distance or conformal (intervals in original units) or "
            "data.target_transform=none"
        )


def _refuse_consistency_without_pairs(cfg: DictConfig) -> None:
    """graph.consistency compares the two constructions of a pair: without graph.pairs there is no pair."""
    graph = cfg.get("graph") or {}
    if graph.get("consistency") and not graph.get("pairs"):
        raise MolgnnError(
            f"graph.consistency={graph.consistency} needs graph.pairs=true (and graph.augment=[...]): each "
            "training molecule is then served under two constructions whose predictions it compares"
        )


def _write_test_predictions(trainer, task, datamodule, out_dir: Path) -> None:
    batches = trainer.predict(task, dataloaders=datamodule.test_dataloader())  # task holds the best weights
    if not batches:
        return
    rows = torch.cat([b["row"] for b in batches]).numpy()
    pred = torch.cat([b["pred"] for b in batches]).float().numpy()
    true = datamodule.datasets["test"].targets[rows].numpy()
    frame = write_predictions(
        rows, datamodule.smiles, true, pred, datamodule.target_names, out_dir / "test_predictions.csv"
    )
    parity_plot(frame, datamodule.target_names, out_dir / "parity.png", title=f"{datamodule.name} test")


@config_errors_as_one_line("molgnn-train")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@user_errors_as_one_line("molgnn-train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg, HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # a sweeper minimizes it: a finite float or a clear error
        return objective(metrics, cfg.monitor)
    return metrics.get(cfg.monitor)


if __name__ == "__main__":
    main()
