"""molgnn-predict's structured config (molgnn.predict.config.PredictConfig, the schema of conf/predict.yaml):
a value of the wrong type or an unknown key fails when Hydra composes the config, as one line naming the key
(no traceback, exit status 2, nothing opened); a good config reaches ``predict_file`` as the same keywords
and writes the same file as the Python call."""

from __future__ import annotations

import inspect

import pytest
from conftest import FIXTURES
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_reliability_config import run_entry

from molgnn.cli import CONF_DIR
from molgnn.cli.predict import main
from molgnn.predict import PredictConfig, predict_arguments, predict_file

NEEDED = ["ckpt_path=nope.ckpt", "input.path=nope.csv"]  # files that do not exist: a config error comes first

BAD = {  # override -> text the one line must hold (the key it is about)
    "chunk_rows=abc": "Error merging override chunk_rows=abc; ValidationError: Value 'abc' of type 'str' could "
    "not be converted to Integer",
    "rank=abc": "Error merging override rank=abc",
    "progress=maybe": "Error merging override progress=maybe",
    "interval_level=high": "Error merging override interval_level=high",
    "chunk_row=5": "Could not override 'chunk_row'; ConfigAttributeError: Key 'chunk_row' not in 'PredictConfig'",
    "input.smile_col=x": "Could not override 'input.smile_col'; ConfigAttributeError: Key 'smile_col' not in 'InputConfig'",
}


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("predict", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("override", list(BAD))
def test_a_bad_value_or_key_fails_at_compose_time_in_one_line(monkeypatch, capfd, tmp_path, override):
    out = tmp_path / "p.csv"
    code, lines = run_entry(
        monkeypatch,
        capfd,
        main,
        ["molgnn-predict", *NEEDED, f"output_path={out}", override, f"hydra.run.dir={tmp_path / 'h'}"],
    )
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("molgnn-predict: config error: ") and BAD[override] in lines[0], lines
    assert len(lines[0]) <= 420 and not out.exists()


def test_the_schema_keeps_every_key_and_default_of_predict_yaml():
    cfg = _compose("ckpt_path=m.ckpt", "input.path=x.csv", "output_path=o.csv")
    assert set(cfg) == {f.name for f in inspect.signature(PredictConfig).parameters.values()}
    assert cfg.chunk_rows == 10000 and cfg.device == "auto" and cfg.input.smiles_col == "smiles"
    assert cfg.uncertainty_columns is True and cfg.interval_level is None and cfg.shard_timeout_s == 86400.0


def test_uncertainty_columns_switch_off_from_the_command_line():
    # `uncertainty` is also the train config group: a predict key of that name could not be set on the CLI
    args = predict_arguments(
        _compose("ckpt_path=m.ckpt", "input.path=x.csv", "output_path=o.csv", "uncertainty_columns=false")
    )
    assert args["uncertainty"] is False and "uncertainty_columns" not in args


def test_arguments_are_predict_files_keywords_with_ranks_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    args = predict_arguments(
        _compose(
            "ckpt_path=[a.ckpt,b.ckpt]",
            "input.path=x.smi",
            "output_path=o.parquet",
            "batch_size=7",
            "interval_level=0.8",
        )
    )
    assert set(args) == set(inspect.signature(predict_file).parameters)
    assert args["rank"] == 1 and args["world_size"] == 3 and type(args["rank"]) is int
    assert args["ckpt_path"] == ["a.ckpt", "b.ckpt"] and args["input_path"] == "x.smi"
    assert args["batch_size"] == 7 and args["interval_level"] == 0.8 and args["smiles_col"] == "smiles"


@pytest.mark.slow
def test_the_cli_writes_what_predict_file_writes(train_tiny, monkeypatch, tmp_path):
    ckpt = train_tiny("train", "uncertainty=none") / "checkpoints" / "best.ckpt"
    src, cli_out, api_out = FIXTURES / "esol_small.csv", tmp_path / "cli.csv", tmp_path / "api.csv"
    monkeypatch.setattr(
        "sys.argv",
        [
            "molgnn-predict",
            f"ckpt_path={ckpt}",
            f"input.path={src}",
            f"output_path={cli_out}",
            "num_workers=0",
            "progress=false",
            "chunk_rows=50",
            "device=cpu",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
    )
    GlobalHydra.instance().clear()
    main()
    predict_file(str(ckpt), src, api_out, num_workers=0, progress=False, chunk_rows=50)
    assert cli_out.read_bytes() == api_out.read_bytes()
