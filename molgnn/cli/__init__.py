"""Hydra entry points. Each is short: compose, instantiate, fit / predict. User errors become one line."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from molgnn.errors import MolgnnError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])

if not OmegaConf.has_resolver("molgnn_root"):
    OmegaConf.register_new_resolver("molgnn_root", lambda: PROJECT_ROOT)

log = logging.getLogger("molgnn")


def user_errors_as_one_line(prog: str):
    """Decorator for a Hydra task function: MolgnnError (bad file, column, checkpoint, config value) is
    printed as ``prog: error: message`` and exits with status 2 instead of a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except MolgnnError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                sys.exit(2)

        return inner

    return wrap
