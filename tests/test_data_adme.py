"""The bundled Biogen ADME dev suite: each endpoint is a data option that brings the authors' split."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from molgnn.data.split import PredefinedSplit

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = {
    "adme_hlm": "HLM",
    "adme_rlm": "RLM",
    "adme_mdr1_er": "MDR1_ER",
    "adme_sol": "Sol",
    "adme_hppb": "hPPB",
    "adme_rppb": "rPPB",
}


@pytest.mark.parametrize("option", sorted(ENDPOINTS))
def test_adme_option_selects_the_authors_split(compose, option):
    cfg = compose("train", [f"data={option}"])
    ep = ENDPOINTS[option]
    assert cfg.data.name == option and list(cfg.data.target_cols) == ["target"]
    assert Path(cfg.data.path) == ROOT / "data/adme_fang2023" / f"fang_{ep}.csv"
    assert cfg.split._target_ == "molgnn.data.split.PredefinedSplit"
    assert (
        Path(cfg.split.path) == ROOT / "data/adme_fang2023" / f"fang_{ep}.json"
        and Path(cfg.split.path).exists()
    )


def test_split_on_the_command_line_still_overrides_it(compose):
    assert compose("train", ["data=adme_sol", "split=scaffold"]).split._target_.endswith("ScaffoldSplit")
    cfg = compose("train", ["data=adme_sol", "split=random"])
    assert cfg.split._target_.endswith("RandomSplit") and cfg.data.name == "adme_sol"
    assert compose("train", []).split._target_.endswith("ScaffoldSplit")  # the default is unchanged


def test_adme_sol_data_module_has_the_published_split(compose):
    """Instantiated exactly as molgnn/cli/train.py does it, without training."""
    cfg = compose("train", ["data=adme_sol", "data.featurize_workers=1"])
    encoder = instantiate(cfg.encoder)
    split = instantiate(cfg.split)
    assert isinstance(split, PredefinedSplit)
    datamodule = instantiate(cfg.data, _partial_=True)(split=split, spec=encoder.spec)
    datamodule.setup("fit")
    assert len(datamodule.invalid_rows) == 0
    assert {k: len(v) for k, v in datamodule.split.items()} == {"train": 1564, "valid": 174, "test": 435}
    assert datamodule.split == json.loads((ROOT / "data/adme_fang2023/fang_Sol.json").read_text())
    assert datamodule.target_names == ["target"] and datamodule.name == "adme_sol"


def test_bench_dev_suite_overrides_compose(compose):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert len(common.DEV_SUITE) == 9 and set(common.PEERS) == set(common.DEV_SUITE)
    for name in common.DEV_SUITE:
        cfg = compose("train", common.dataset_overrides(name))
        assert cfg.data.name == name and Path(cfg.split.path).exists()
        assert common.judged_metric(name) == ("test/mae" if name.startswith("adme_") else "test/rmse")
