"""Hyperparameter sweeps (``molgnn-train -m hparams_search=...``): the value a trial returns to the sweeper, and
``best_config.yaml``, the best trial's complete config, written when the sweep ends."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from molgnn.errors import MolgnnError

log = logging.getLogger("molgnn.sweep")

RESULTS = "optimization_results.yaml"  # written by the Optuna sweeper: best_params, best_value
BEST = "best_config.yaml"


class TrialFailed(RuntimeError):
    """A trial ended without a usable objective (its validation metric is NaN or infinite). Not a MolgnnError: the
    sweeper records the trial as failed and ``hydra.sweeper.max_failure_rate`` decides whether the sweep goes on."""


def objective(metrics: dict[str, Any], monitor: str) -> float:
    """The value a sweeper minimizes: the run's validation ``monitor`` metric, a finite float or a clear error."""
    if monitor not in metrics:
        logged = ", ".join(sorted(k for k in metrics if k.startswith("val/"))) or "none"
        raise MolgnnError(f"monitor={monitor} is not a metric of this run (validation logged: {logged})")
    value = metrics[monitor]
    if value is None or not math.isfinite(value):
        raise TrialFailed(f"{monitor} is {'NaN or infinite' if value is None else value}: the trial diverged")
    return float(value)


class WriteBestConfig(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/hparams_search/*): when a sweep ends, copy the best trial's
    composed config to ``<sweep dir>/best_config.yaml`` so that one command re-runs it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_best_config(Path(config.hydra.sweep.dir))


def write_best_config(sweep_dir: Path) -> Path | None:
    """Find the trial of ``optimization_results.yaml`` (its parameters, then its value) among the trial
    directories of ``sweep_dir`` and write its config as ``best_config.yaml``. Returns that path (None, with a
    warning, when there is no single best trial: no results file, or a multi-objective study)."""
    results_path = sweep_dir / RESULTS
    if not results_path.is_file():
        log.warning("no %s in %s: best_config.yaml not written", RESULTS, sweep_dir)
        return None
    results = OmegaConf.to_container(OmegaConf.load(results_path))
    if "best_params" not in results:
        log.warning(
            "%s has no single best trial (multi-objective study): best_config.yaml not written", RESULTS
        )
        return None
    trial = _best_trial(sweep_dir, results["best_params"], float(results["best_value"]))
    if trial is None:
        log.warning("no trial directory of %s matches %s: best_config.yaml not written", sweep_dir, RESULTS)
        return None
    overrides = OmegaConf.to_container(OmegaConf.load(trial / ".hydra" / "overrides.yaml"))
    out = sweep_dir / BEST
    header = [
        f"# The best trial of this sweep: {trial} ({_monitor(trial)} = {results['best_value']}), composed config.",
        f"#   molgnn-train --config-dir={sweep_dir.resolve()} --config-name={Path(BEST).stem}",
        "# re-runs it into a new run directory; values can be changed there too (trainer.max_epochs=200).",
        "# The trial's overrides: " + " ".join(overrides),
        "defaults:",
        "  - hydra: default   # run directories as molgnn-train's (conf/hydra/default.yaml)",
        "  - _self_",
        "",
    ]
    out.write_text("\n".join(header) + (trial / ".hydra" / "config.yaml").read_text())
    log.info(
        "best trial %s; its config: %s (re-run: molgnn-train --config-dir=%s --config-name=%s)",
        trial.name,
        out,
        sweep_dir.resolve(),
        Path(BEST).stem,
    )
    return out


def _best_trial(sweep_dir: Path, best_params: dict[str, Any], best_value: float) -> Path | None:
    """The trial directory whose overrides hold ``best_params`` and whose metric is closest to ``best_value``
    (several trials can draw the same parameters); by value alone if no overrides match."""
    trials = sorted(p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml"))
    matching = [t for t in trials if _has_params(t, best_params)] or trials
    scored = [(abs(v - best_value), t) for t in matching if (v := _value(t)) is not None]
    scored = [(d, t) for d, t in scored if d <= 1e-6 * max(1.0, abs(best_value))]
    return min(scored, key=lambda s: s[0])[1] if scored else None


def _has_params(trial: Path, params: dict[str, Any]) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OmegaConf.to_container(OmegaConf.load(trial / ".hydra" / "overrides.yaml"))
    given = {o.get_key_element(): o.value() for o in OverridesParser.create().parse_overrides(overrides)}
    return all(k in given and given[k] == v for k, v in params.items())


def _monitor(trial: Path) -> str:
    return str(OmegaConf.load(trial / ".hydra" / "config.yaml").get("monitor", "val/rmse"))


def _value(trial: Path) -> float | None:
    metrics_path = trial / "metrics.json"
    if not metrics_path.is_file():
        return None
    value = json.loads(metrics_path.read_text()).get(_monitor(trial))
    return float(value) if value is not None else None
