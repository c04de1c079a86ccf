"""Config mistakes on the molgnn-train command line: one line on stderr saying what and where, exit status 2,
no traceback (HYDRA_FULL_ERROR unset). Most run the real entry point in-process (fast); one runs it as a
subprocess through ``python -m``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

from molgnn.cli.train import main

SMALL = Path(__file__).parent / "fixtures" / "esol_small.csv"


def run_entry(monkeypatch, capfd, entry, argv):
    """Run a console-script ``entry`` with ``argv`` in this process -> (exit code, non-empty stderr lines)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            entry()
    finally:
        GlobalHydra.instance().clear()
    assert "HYDRA_FULL_ERROR" not in os.environ  # the wrapper puts the environment back
    err = capfd.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, [ln for ln in err.splitlines() if ln.strip()]


def run_main(monkeypatch, capfd, tmp_path, *overrides):
    """molgnn-train with ``overrides`` in this process -> (exit code, stderr lines)."""
    return run_entry(
        monkeypatch,
        capfd,
        main,
        [
            "molgnn-train",
            *overrides,
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
    )


CASES = {
    "unknown_key": (
        ["foo=1"],
        "config error: Could not override 'foo'; ConfigAttributeError: Key 'foo' is not in "
        "struct; To append to your config use +foo=1",
    ),
    "unknown_nested_key": (["encoder.depth=3"], "Could not override 'encoder.depth'"),
    "misspelt_group_option": (
        ["encoder=gin"],
        "config error: In 'train': Could not find 'encoder/gin'; available: chemprop, dmpnn, gine,",
    ),
    "misspelt_group": (["encodr=gine"], "Could not override 'encodr'"),
    "bad_override_syntax": (["trainer.max_epochs=["], "cannot parse override 'trainer.max_epochs=['"),
    "missing_values": (
        ["data=csv"],
        "error: missing config value(s): data.path, data.target_cols; set them on "
        "the command line, e.g. data.path=...",
    ),
    "missing_file": (
        ["data=csv", "data.path=nope.csv", "data.target_cols=[y]"],
        "error: nope.csv: file not found",
    ),
    "missing_split_file": (
        [
            "data=csv",
            f"data.path={SMALL}",
            "data.target_cols=[logS]",
            "split=predefined",
            "split.path=nope.json",
        ],
        "nope.json: split file not found (split.path)",
    ),
    "bad_interpolation": (["data.path=${nowhere}"], "Interpolation key 'nowhere' not found (at data.path)"),
    "invalid_value": (
        ["split.sizes=[0.5,0.5]"],
        "Error in call to target 'molgnn.data.split.ScaffoldSplit'; "
        "ValueError: split.sizes must be three non-negative fractions",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_errors_are_one_line(monkeypatch, capfd, tmp_path, case):
    overrides, expected = CASES[case]
    code, lines = run_main(monkeypatch, capfd, tmp_path, *overrides)
    assert code == 2
    errors = [ln for ln in lines if ln.startswith("molgnn-train: ")]
    assert len(errors) == 1 and expected in errors[0], lines
    assert len(errors[0]) <= 420


def test_hydra_full_error_keeps_the_full_report(monkeypatch, tmp_path):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["molgnn-train", "foo=1", f"hydra.run.dir={tmp_path}"])
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(ConfigCompositionException):
            main()
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_real_cli_subprocess_misspelt_group_option(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    for args, expected in ((["encoder=gin"], "Could not find 'encoder/gin'"),):
        proc = subprocess.run(
            [sys.executable, "-m", "molgnn.cli.train", *args, f"hydra.run.dir={tmp_path}"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("molgnn-train: config error: ") and expected in lines[0]
        )


@pytest.mark.parametrize(
    "module,prog", [("molgnn.cli.pretrain", "molgnn-pretrain"), ("molgnn.cli.predict", "molgnn-predict")]
)
def test_pretrain_and_predict_unknown_key_is_one_line(monkeypatch, capfd, tmp_path, module, prog):
    import importlib

    entry = importlib.import_module(module).main
    code, lines = run_entry(monkeypatch, capfd, entry, [prog, "foo=1", f"hydra.run.dir={tmp_path}"])
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: config error: Could not override 'foo'"), lines


def test_target_cols_as_a_lone_string_is_one_column():
    from molgnn.data.datamodule import MoleculeDataModule
    from molgnn.data.split import RandomSplit
    from molgnn.featurize.spec import default_spec

    dm = MoleculeDataModule(str(SMALL), "smiles", "logS", RandomSplit(), default_spec())
    assert dm.target_cols == ["logS"]
