"""molgnn-bundle: the heads of several molgnn-train checkpoints on their shared frozen encoder -> one file."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.predictor import load_predictor
from molgnn.transfer import bundle_checkpoints

log = logging.getLogger("molgnn.bundle")


@config_errors_as_one_line("molgnn-bundle")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bundle")
@user_errors_as_one_line("molgnn-bundle")
def main(cfg: DictConfig) -> None:
    heads = [str(p) for p in cfg.heads] if not isinstance(cfg.heads, str) else [cfg.heads]
    names = list(cfg.names) if cfg.names is not None else None
    path = bundle_checkpoints(heads, cfg.output, names)
    model = load_predictor(path)  # read back: the file is complete and loads strictly
    log.info(
        "wrote %s: encoder %s + %d heads (%s)",
        path,
        model.encoder.family,
        len(model.heads),
        ", ".join(model.qualified_columns),
    )


if __name__ == "__main__":
    main()
