"""molgnn-predict: checkpoint(s) + SMILES file -> predictions, streamed in chunks (molgnn.predict)."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.predict import PredictSummary, predict_arguments, predict_file  # registers predict_schema

log = logging.getLogger("molgnn.predict")


def predict(cfg: DictConfig) -> PredictSummary:
    """Run the prediction job a composed ``predict`` config (schema ``PredictConfig``) describes."""
    return predict_file(**predict_arguments(cfg))


@config_errors_as_one_line("molgnn-predict")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@user_errors_as_one_line("molgnn-predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
