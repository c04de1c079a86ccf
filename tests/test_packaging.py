"""A wheel built from the repository, installed (not editable) into a fresh virtual environment, runs
molgnn-train and molgnn-predict from an empty directory: configs, bundled data and shipped models come from the
installed package (molgnn/_bundled), outputs go under the current directory, the cache to $XDG_CACHE_HOME/molgnn,
and nothing is written into site-packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "molgnn", "conf", "data", "models"]


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{cmd[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.slow
def test_wheel_runs_train_and_predict_from_an_empty_directory(tmp_path):
    # Build from a copy, so the checkout gets no build/ or egg-info and no stale build/lib leaks into the wheel.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name,
                src / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", XDG_CACHE_HOME=str(tmp_path / "xdg"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.setdefault("OMP_NUM_THREADS", "1")

    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path / "dist",
            src,
        ],
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = (tmp_path / "dist").glob("molgnn-*.whl")
    # --system-site-packages for torch & co.; the system's (editable) molgnn must lose to the venv's own copy.
    venv = tmp_path / "venv"
    _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=tmp_path, env=env
    )
    py, bindir = venv / "bin" / "python", venv / "bin"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            wheel,
        ],
        cwd=tmp_path,
        env=env,
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    site = Path(
        _run(
            [py, "-c", "import molgnn, pathlib; print(pathlib.Path(molgnn.__file__).parent)"],
            cwd=empty,
            env=env,
        ).strip()
    )
    assert site.is_relative_to(venv) and site.parent.name == "site-packages", site
    assert not site.is_relative_to(ROOT)
    # Every default the configs point at resolves to a file inside the installed package.
    check = (
        "import molgnn.cli as c\nfrom hydra import compose, initialize_config_dir\n"
        "with initialize_config_dir(config_dir=c.CONF_DIR, version_base='1.3'):\n"
        "    t = compose('train', ['encoder=pretrained', 'paths.output_dir=x'])\n"
        "    a = compose('train', ['data=adme_sol', 'paths.output_dir=x'])\n"
        "    p = compose('pretrain', ['paths.output_dir=x'])\n"
        "for path in (c.CONF_DIR, t.data.path, t.encoder.path, a.data.path, a.split.path, p.data.path,\n"
        "             t.paths.cache_dir):\n"
        "    print(path)"
    )
    *defaults, cache_dir = _run([py, "-c", check], cwd=empty, env=env).split()
    for path in defaults:
        assert Path(path).exists() and Path(path).is_relative_to(site / "_bundled"), path
    assert Path(cache_dir) == tmp_path / "xdg" / "molgnn"
    installed = _files(site)

    run = tmp_path / "run"
    _run(
        [bindir / "molgnn-train", "trainer.max_epochs=1", "encoder.hidden_dim=32", f"hydra.run.dir={run}"],
        cwd=empty,
        env=env,
    )
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "metrics.json").is_file()
    assert any((tmp_path / "xdg" / "molgnn").iterdir()), (
        "featurized graphs not cached in $XDG_CACHE_HOME/molgnn"
    )

    (tmp_path / "in.csv").write_text("smiles\nCCO\nc1ccccc1O\nnot_a_smiles\n")
    out = tmp_path / "out.csv"
    _run(
        [
            bindir / "molgnn-predict",
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            f"input.path={tmp_path / 'in.csv'}",
            f"output_path={out}",
        ],
        cwd=empty,
        env=env,
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("smiles,logS")
    assert (
        empty / "outputs" / "predict"
    ).is_dir()  # Hydra's default run directory: under the current directory
    assert _files(site) == installed, "a run wrote into site-packages"
