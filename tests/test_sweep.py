"""Sweeps (issue 18): molgnn-train -m hparams_search=dmpnn_optuna (Optuna, 4 trials of 1 epoch), the best trial's
config written out and re-run, the submitit launcher (submitit_local: real local jobs, no SLURM needed), and the
errors a sweep can end on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ESOL_CSV_QUIET, ROOT

# TINY_ESOL, with the searched keys left to the search space (narrowed here to small values)
TINY_SWEEP = [*ESOL_CSV_QUIET, "trainer.max_epochs=1", "diagnostics_molecules=0"]


def _sweep(tmp_path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-c",
        "from molgnn.cli.train import main; main()",
        "-m",
        "hparams_search=dmpnn_optuna",
        *TINY_SWEEP,
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _trial_values(sweep, monitor: str) -> dict[str, float]:
    trials = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    return {t.name: json.loads((t / "metrics.json").read_text())[monitor] for t in trials}


@pytest.mark.slow
def test_optuna_sweep_runs_4_trials_and_writes_a_rerunnable_best_config(tmp_path):
    _sweep(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "encoder.hidden_dim=choice(16,32)",  # a command-line sweep replaces the shipped range
        "encoder.num_layers=choice(1,2)",
        "monitor=val/mae",  # the objective is the run's monitor, not always val/rmse
    )
    sweep = tmp_path / "sweep"
    values = _trial_values(sweep, "val/mae")
    assert sorted(values) == ["0", "1", "2", "3"]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(min(values.values()), rel=1e-9)
    assert set(results.best_params) == {
        "encoder.hidden_dim",
        "encoder.num_layers",
        "encoder.dropout",
        "task.optimizer.lr",
    }
    for trial in values:  # the searched values reached the trials' configs
        cfg = OmegaConf.load(sweep / trial / ".hydra" / "config.yaml")
        assert cfg.encoder.hidden_dim in (16, 32) and cfg.encoder.num_layers in (1, 2)
        assert cfg.head.hidden_dim == 16 and cfg.monitor == "val/mae"

    # best_config.yaml is the best trial's complete config: composing it (as the documented
    # `molgnn-train --config-dir=<sweep> --config-name=best_config` does) and training reproduces the best value
    best = sweep / "best_config.yaml"
    assert f"--config-dir={sweep.resolve()} --config-name=best_config" in best.read_text()
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from molgnn.cli.train import train

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(sweep), version_base="1.3"):
        cfg = compose("best_config", [f"hydra.searchpath=[file://{ROOT / 'conf'}]"])
    for key, value in results.best_params.items():
        assert OmegaConf.select(cfg, key) == value
    metrics = train(cfg, tmp_path / "rerun")
    assert metrics["val/mae"] == pytest.approx(results.best_value, rel=1e-4)


@pytest.mark.slow
def test_submitit_local_launcher_runs_trials_as_jobs(tmp_path):
    # the launcher molgnn-train hands SLURM jobs to (hydra/launcher=submitit_slurm), run by submitit locally
    _sweep(
        tmp_path,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",  # both trials submitted together
        "encoder.hidden_dim=16",
        "encoder.num_layers=1",
    )
    sweep = tmp_path / "sweep"
    values = _trial_values(sweep, "val/rmse")
    assert sorted(values) == ["0", "1"]
    assert list((sweep / ".submitit").iterdir())  # they ran as submitit jobs
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == pytest.approx(
        min(values.values())
    )
    assert (sweep / "best_config.yaml").is_file()


def test_a_bad_search_space_key_fails_in_one_line_naming_it(tmp_path, monkeypatch, capsys):
    # in-process (the console script's own function; a subprocess would spend its time importing): the first
    # trial's config does not compose, before anything trains
    import logging

    from molgnn.cli.train import main

    argv = [
        "molgnn-train",
        "-m",
        "hparams_search=dmpnn_optuna",
        "encoder.hiden_dim=choice(16,32)",
        *TINY_SWEEP,
    ]
    monkeypatch.setattr(
        sys, "argv", [*argv, f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.sweeper.n_trials=2"]
    )
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    root, handlers, level = logging.getLogger(), logging.getLogger().handlers[:], logging.getLogger().level
    try:  # Hydra configures logging for its run: give the root logger back as it was
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "molgnn-train" in ln]
    assert len(err) == 1 and "config error" in err[0] and "'encoder.hiden_dim'" in err[0], err
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))


def test_objective_is_the_monitor_a_finite_float_or_a_clear_error():
    from molgnn.cli.sweep import TrialFailed, objective
    from molgnn.errors import MolgnnError

    metrics = {"val/rmse": 1.5, "val/mae": 1.25, "test/rmse": 2.0, "val/r2": None}
    assert objective(metrics, "val/mae") == 1.25
    with pytest.raises(MolgnnError, match=r"monitor=val/nll .*val/mae, val/r2, val/rmse"):
        objective(metrics, "val/nll")
    with pytest.raises(TrialFailed, match="val/r2 is NaN or infinite"):  # clean_metrics: non-finite -> None
        objective(metrics, "val/r2")


def _trial(sweep, name: str, overrides: list[str], value: float) -> None:
    hydra_dir = sweep / name / ".hydra"
    hydra_dir.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), hydra_dir / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"monitor": "val/rmse", "seed": int(name)}), hydra_dir / "config.yaml")
    (sweep / name / "metrics.json").write_text(json.dumps({"val/rmse": value}))


def test_best_config_is_the_trial_with_the_best_params_and_value(tmp_path):
    from molgnn.cli.sweep import write_best_config

    sweep = tmp_path / "sweep"
    assert write_best_config(sweep) is None  # no results: a warning, not an error
    _trial(sweep, "0", ["encoder.dropout=0.1", "task.optimizer.lr=0.001", "data=csv"], 0.9)
    _trial(sweep, "1", ["encoder.dropout=0.1", "task.optimizer.lr=0.001", "data=csv"], 0.8)  # same draw
    _trial(sweep, "2", ["encoder.dropout=0.0", "task.optimizer.lr=0.001", "data=csv"], 0.8)
    (sweep / "3").mkdir()  # a trial that never finished
    results = {"name": "optuna", "best_params": {"encoder.dropout": 0.1, "task.optimizer.lr": 0.001}}
    OmegaConf.save(OmegaConf.create({**results, "best_value": 0.8}), sweep / "optimization_results.yaml")
    best = write_best_config(sweep)
    cfg = OmegaConf.load(best)
    assert cfg.seed == 1 and list(cfg.defaults) == [{"hydra": "default"}, "_self_"]
    assert "encoder.dropout=0.1 task.optimizer.lr=0.001 data=csv" in best.read_text()


def test_slurm_launcher_composes_from_the_plugin_config():
    # hydra/launcher=submitit_slurm is the plugin's own config (no SLURM here: composed, not launched)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            ["hparams_search=dmpnn_optuna", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=cpu"],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert cfg.hydra.launcher.partition == "cpu"
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "minimize"
    assert cfg.hydra.callbacks.best_config._target_ == "molgnn.cli.sweep.WriteBestConfig"
