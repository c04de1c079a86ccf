"""molgnn-predict: checkpoint(s) + SMILES file -> predictions, streamed in chunks (molgnn.predict)."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, ListConfig

from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.predict import PredictSummary, predict_file

log = logging.getLogger("molgnn.predict")


def predict(cfg: DictConfig) -> PredictSummary:
    """Run the prediction job a composed ``predict`` config describes."""
    ckpts = [str(p) for p in cfg.ckpt_path] if isinstance(cfg.ckpt_path, ListConfig) else str(cfg.ckpt_path)
    return predict_file(ckpts, cfg.input.path, cfg.output_path, smiles_col=cfg.input.smiles_col,
                        output_format=cfg.output_format, chunk_rows=int(cfg.chunk_rows),
                        batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=str(cfg.device),
                        resume=bool(cfg.resume), progress=bool(cfg.progress), rank=int(cfg.rank),
                        world_size=int(cfg.world_size), shard_timeout_s=float(cfg.shard_timeout_s),
                        torch_threads=cfg.torch_threads, uncertainty=bool(cfg.uncertainty),
                        interval_level=cfg.interval_level)


@config_errors_as_one_line("molgnn-predict")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@user_errors_as_one_line("molgnn-predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
