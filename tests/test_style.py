"""House rules that CI holds: ruff lint and format are clean, and no package module passes 300 lines."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a dev dependency (pip install -e .[dev])"
    out = subprocess.run(
        [ruff, *command, "molgnn", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_no_package_module_is_over_300_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "molgnn").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"
