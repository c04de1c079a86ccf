"""Selection (molgnn.uncertainty.select) and molgnn-select: acquisition strategies, NaN handling, minimization,
and the console script on a small ensemble with an invalid SMILES among the candidates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molgnn.errors import MolgnnError
from molgnn.uncertainty.select import STRATEGIES, acquisition, expected_improvement, rank


def test_greedy_returns_top_k_means():
    mean = np.array([0.1, 5.0, -2.0, 3.0, 4.0])
    assert rank(mean, None, "greedy", 3).tolist() == [1, 4, 3]


def test_ucb_prefers_higher_std_at_equal_means():
    mean = np.array([1.0, 1.0, 1.0])
    std = np.array([0.1, 0.5, 0.2])
    assert rank(mean, std, "ucb", 3, beta=1.0).tolist() == [1, 2, 0]
    assert rank(mean, std, "ucb", 1, beta=0.0).tolist() == [0]  # beta 0: greedy, ties in input order


def test_thompson_reproducible_with_seed_and_differs_across_seeds():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=200), np.full(200, 1.0)
    a = rank(mean, std, "thompson", 20, seed=7)
    assert np.array_equal(a, rank(mean, std, "thompson", 20, seed=7))
    assert not np.array_equal(a, rank(mean, std, "thompson", 20, seed=8))


@pytest.mark.parametrize("strategy", ["ei", "pi"])
def test_improvement_without_best_is_refused(strategy):
    with pytest.raises(MolgnnError, match=f"'{strategy}'.*best"):
        rank(np.zeros(3), np.ones(3), strategy, 1)


@pytest.mark.parametrize("strategy", ["ucb", "thompson", "ei", "pi"])
def test_missing_std_is_refused_naming_the_strategy(strategy):
    with pytest.raises(MolgnnError, match=f"'{strategy}'.*std"):
        rank(np.zeros(3), None, strategy, 1, best=0.0)


def test_unknown_strategy_is_refused():
    with pytest.raises(MolgnnError, match="unknown selection strategy 'bogus'"):
        rank(np.zeros(3), np.ones(3), "bogus", 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nan_mean_never_selected(strategy):
    mean = np.array([np.nan, 1.0, np.nan, 0.5, 100.0])
    mean[4] = np.nan
    std = np.array([10.0, 0.1, 10.0, 0.1, 0.1])
    picked = rank(mean, std, strategy, 5, best=0.0, seed=3)
    assert sorted(picked.tolist()) == [1, 3]  # fewer than k come back when fewer are valid


def test_maximize_false_flips():
    mean = np.array([0.1, 5.0, -2.0, 3.0])
    std = np.array([0.1, 0.1, 0.1, 3.5])
    assert rank(mean, None, "greedy", 2, maximize=False).tolist() == [2, 0]
    # lower confidence bound: 3 - 3.5 = -0.5 beats 0.1 - 0.1 = 0
    assert rank(mean, std, "ucb", 2, maximize=False).tolist() == [2, 3]
    # improvement below best=0: only -2.0 (certain) and 3.0 +- 3.5 (some chance) can improve
    assert rank(mean, std, "pi", 2, maximize=False, best=0.0).tolist() == [2, 3]


def test_expected_improvement_closed_form():
    mean, std, best = np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.0, 0.0]), 1.0
    ei = expected_improvement(mean, std, best)
    assert ei[0] == pytest.approx(1.0 / np.sqrt(2 * np.pi))  # z = 0: std * phi(0)
    assert ei[1] == 0.0 and ei[2] == pytest.approx(1.0)
    draws = np.random.default_rng(0).normal(0.5, 2.0, 400_000)
    mc = np.maximum(draws - 1.0, 0).mean()
    assert acquisition([0.5], [2.0], "ei", best=1.0)[0] == pytest.approx(mc, rel=0.02)


# --- molgnn-select ------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
BAD = "c1ccccc1("


@pytest.fixture(scope="module")
def ensemble(train_tiny) -> list[Path]:
    """Two tiny uncalibrated models (1 epoch on 120 ESOL rows), different seeds: an ensemble with logS_std."""
    return [
        train_tiny(f"train{seed}", f"seed={seed}", "uncertainty=none") / "checkpoints" / "best.ckpt"
        for seed in (0, 1)
    ]


@pytest.fixture(scope="module")
def candidates(tmp_path_factory) -> Path:
    """30 ESOL SMILES with an id column and one invalid SMILES (row 4)."""
    rows = pd.read_csv(FIXTURES / "esol_small.csv", dtype=str).tail(30)["smiles"].tolist()
    rows[4] = BAD
    path = tmp_path_factory.mktemp("cands") / "candidates.csv"
    pd.DataFrame({"id": [f"c{i}" for i in range(len(rows))], "smiles": rows}).to_csv(path, index=False)
    return path


def _select_cmd(ckpts: list[Path], candidates: Path, out: Path, *overrides: str) -> list[str]:
    ckpt = f"ckpt_path=[{','.join(map(str, ckpts))}]" if len(ckpts) > 1 else f"ckpt_path={ckpts[0]}"
    return [
        sys.executable,
        "-m",
        "molgnn.cli.select",
        ckpt,
        f"input.path={candidates}",
        f"output_path={out}",
        f"hydra.run.dir={out.parent / 'run'}",
        "num_workers=0",
        *overrides,
    ]


def test_cli_selects_k_rows_in_rank_order_never_invalid(ensemble, candidates, tmp_path):
    out = tmp_path / "sel" / "picked.csv"
    proc = subprocess.run(
        _select_cmd(ensemble, candidates, out, "k=10", "strategy=ucb", "beta=2"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sel = pd.read_csv(out)
    assert list(sel.columns) == ["id", "smiles", "rank", "score", "mean", "std"]
    assert len(sel) == 10 and sel["rank"].tolist() == list(range(1, 11))
    assert (np.diff(sel["score"]) <= 0).all() and (sel["std"] > 0).all()
    assert np.allclose(sel["score"], sel["mean"] + 2 * sel["std"], atol=1e-5)
    assert BAD not in sel["smiles"].tolist() and sel["id"].is_unique
    assert sorted(p.name for p in out.parent.iterdir()) == ["picked.csv", "run"]  # temporaries removed
    assert "10 selected" in proc.stderr + proc.stdout


def test_select_all_valid_when_k_is_larger_and_minimize(ensemble, candidates, tmp_path, compose):
    from molgnn.cli.select import select

    cfg = compose(
        "select",
        [
            f"ckpt_path=[{ensemble[0]},{ensemble[1]}]",
            f"input.path={candidates}",
            f"output_path={tmp_path / 'sel.parquet'}",
            "k=100",
            "strategy=greedy",
            "maximize=false",
            "num_workers=0",
            f"paths.output_dir={tmp_path}",
        ],
    )
    sel = select(cfg)
    back = pd.read_parquet(tmp_path / "sel.parquet")
    assert len(back) == len(sel) == 29 and BAD not in back["smiles"].tolist()
    assert (np.diff(back["mean"]) >= 0).all()  # minimization: lowest predicted logS first


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["strategy=ucb"], "strategy=ucb needs a predicted spread"),
        (["strategy=ei"], "best: strategy=ei needs the best value"),
        (["target=logP"], "target=logP: not predicted by the model; available: logS"),
        (["strategy=bogus"], "strategy=bogus: unknown"),
    ],
)
def test_cli_errors_are_one_line_naming_the_key(ensemble, candidates, tmp_path, overrides, message, compose):
    from molgnn.cli.select import select

    cfg = compose(
        "select",
        [
            f"ckpt_path={ensemble[0]}",
            f"input.path={candidates}",
            "num_workers=0",
            f"output_path={tmp_path / 'sel.csv'}",
            f"paths.output_dir={tmp_path}",
            *overrides,
        ],
    )
    with pytest.raises(MolgnnError, match=message):
        select(cfg)
    assert not (tmp_path / "sel.csv").exists()


def test_cli_error_exit_status(ensemble, candidates, tmp_path):
    proc = subprocess.run(
        _select_cmd(ensemble[:1], candidates, tmp_path / "s.csv", "strategy=thompson"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("molgnn-select: error: strategy=thompson needs")
    assert not list(tmp_path.glob(".s.csv*"))
