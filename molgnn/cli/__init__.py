"""Hydra entry points. Each is short: compose, instantiate, fit / predict. User errors become one line."""

from __future__ import annotations

import os

# Thread defaults, set before torch (and its OpenMP runtime) is first imported: every entry point imports this
# package first. OpenMP's default wait policy spin-waits between parallel regions, so a second job on the same
# cores slowed a run ~15x. PASSIVE is the robust default, not the fastest one: alone it costs ~1.5x per ESOL
# epoch (0.99 against 0.67 s); beside a busy 2-thread job it gives 1.05 s against 15 s for spinning threads
# (README "Speed"). A user's own setting is kept: OMP_WAIT_POLICY=ACTIVE on a dedicated machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from molgnn.malloc import keep_freed_memory  # noqa: E402

keep_freed_memory()  # freed tensor memory is reused, not page-faulted in again each batch (molgnn.malloc)

import functools  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from hydra.errors import HydraException  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from molgnn.errors import MolgnnError  # noqa: E402

# The configs and bundled defaults ship inside the package: molgnn/_bundled/{conf,data,models}. In the source tree
# these are symlinks to the checkout's conf/, data/ and models/ (which stay where they are); a wheel or a plain
# `pip install .` holds copies (pyproject.toml [tool.setuptools.package-data]). Resolving the links makes an
# editable install see the checkout itself, so both kinds of install find everything the same way.
CONF_DIR = str((Path(__file__).resolve().parents[1] / "_bundled" / "conf").resolve())
PROJECT_ROOT = str(
    Path(CONF_DIR).parent
)  # holds conf/, data/, models/: the checkout, or site-packages/molgnn/_bundled


def default_cache_dir() -> str:
    """Where featurized graphs are cached (``paths.cache_dir``): ``<checkout>/.cache/molgnn`` when molgnn runs from
    a source checkout (editable install), else ``$XDG_CACHE_HOME/molgnn`` (``~/.cache/molgnn``); never inside
    site-packages. Entries are keyed by file hash + featurizer spec, so one cache serves every directory."""
    root = Path(PROJECT_ROOT)
    if (root / "pyproject.toml").is_file() and (root / "molgnn").is_dir():
        return str(root / ".cache" / "molgnn")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "molgnn")


if not OmegaConf.has_resolver("molgnn_root"):
    OmegaConf.register_new_resolver("molgnn_root", lambda: PROJECT_ROOT)
if not OmegaConf.has_resolver("molgnn_cache"):
    OmegaConf.register_new_resolver("molgnn_cache", default_cache_dir)

log = logging.getLogger("molgnn")


def user_errors_as_one_line(prog: str):
    """Decorator for a Hydra task function: MolgnnError (bad file, column, checkpoint, config value) is
    printed as ``prog: error: message`` and exits with status 2 instead of a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                if args and isinstance(args[0], DictConfig):
                    _check_no_missing(args[0])
                return fn(*args, **kwargs)
            except MolgnnError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                sys.exit(2)
            except (HydraException, OmegaConfBaseException) as exc:  # a config value no object accepts
                if os.environ.get("HYDRA_FULL_ERROR") == "1" and not _wrapped_by_us():
                    raise
                print(f"{prog}: config error: {config_error_line(exc)}", file=sys.stderr)
                sys.exit(2)

        return inner

    return wrap


def config_errors_as_one_line(prog: str):
    """Decorator for the function ``@hydra.main`` returns (the console-script entry): Hydra's own errors
    before the task runs (unknown key ``foo=1``, missing group option ``encoder=gin``, bad override syntax)
    print as ``prog: config error: ...`` on one line and exit with status 2. ``HYDRA_FULL_ERROR=1`` keeps
    Hydra's full report. Errors that are bugs (not Hydra/OmegaConf/molgnn errors) keep their traceback."""

    def wrap(hydra_main):
        @functools.wraps(hydra_main)
        def inner(*args, **kwargs):
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                return hydra_main(*args, **kwargs)
            os.environ["HYDRA_FULL_ERROR"] = (
                "1"  # Hydra re-raises instead of printing; we choose what to print
            )
            os.environ[_OURS] = "1"
            try:
                return hydra_main(*args, **kwargs)
            except (HydraException, OmegaConfBaseException) as exc:
                print(f"{prog}: config error: {config_error_line(exc)}", file=sys.stderr)
                sys.exit(2)
            finally:
                os.environ.pop("HYDRA_FULL_ERROR", None)
                os.environ.pop(_OURS, None)

        return inner

    return wrap


_OURS = "MOLGNN_SHORT_ERRORS"


def _wrapped_by_us() -> bool:
    return os.environ.get(_OURS) == "1"


def _check_no_missing(cfg: DictConfig) -> None:
    """Every ``???`` value must be given on the command line; name them all at once."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
    if missing:
        raise MolgnnError(
            f"missing config value(s): {', '.join(missing)}; set them on the command line, "
            f"e.g. {missing[0]}=..."
        )


def config_error_line(exc: BaseException) -> str:
    """One line from a Hydra/OmegaConf error: its first line (with the override or config key it is about),
    the cause, the available options and Hydra's '+key=value' hint; no search paths or tracebacks."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    parts = [(lines[0] if lines else type(exc).__name__).rstrip(".:")]
    override = getattr(exc, "override", None)
    if override:
        parts[0] = f"cannot parse override {override!r}: {parts[0]}"
    full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("full_key:")), "")
    if full_key and full_key not in parts[0]:
        parts[0] += f" (at {full_key})"
    if "Available options" in text:
        options = []
        for ln in text.split("Available options", 1)[1].splitlines()[1:]:
            if not ln.startswith("\t"):
                break
            options.append(ln.strip())
        parts.append(f"available: {', '.join(options)}")
    cause = exc.__cause__
    if cause is not None:
        cause_lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        parts.append(f"{type(cause).__name__}: {cause_lines[0] if cause_lines else ''}".rstrip(": "))
    parts += [ln for ln in lines[1:] if ln.startswith("To append")]
    line = "; ".join(parts)
    return line if len(line) <= 400 else line[:397] + "..."


def build_loggers(cfg: DictConfig) -> list:
    """The Lightning loggers of ``cfg.logger`` (``logger=none``: an empty list)."""
    from hydra.utils import instantiate

    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]


def build_callbacks(cfg: DictConfig, has_logger: bool = True) -> list:
    """The callbacks of ``cfg.callbacks``. Without a logger (``logger=none``) a LearningRateMonitor has nothing
    to log to (Lightning refuses to start), so it is left out."""
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not has_logger:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def prepare_run_dir(cfg: DictConfig, out_dir=None) -> tuple[DictConfig, Path]:
    """Point ``paths.output_dir`` at ``out_dir`` (when given), seed everything, create the directory and write
    ``config_resolved.yaml`` there. Returns (config, run directory)."""
    import lightning as L

    if out_dir is not None:
        cfg = cfg.copy()
        OmegaConf.update(cfg, "paths.output_dir", str(out_dir), force_add=True)
    run_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return cfg, run_dir
