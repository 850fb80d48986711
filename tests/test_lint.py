"""Lint: Python style (ruff) and the GitHub workflows (actionlint, zizmor). Fails on findings."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*cmd):
    exe = BIN / cmd[0] if (BIN / cmd[0]).exists() else shutil.which(cmd[0])
    if exe is None:
        pytest.fail(f"{cmd[0]} is not installed: run scripts/ensure_env.sh")
    return subprocess.run([str(exe), *cmd[1:]], cwd=REPO, capture_output=True, text=True)


def test_ruff():
    r = _run("ruff", "check", "code", "tools", "tests")
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint():
    r = _run("actionlint", "-no-color")
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor():
    r = _run("zizmor", "--offline", "--no-progress", ".github/workflows")
    assert r.returncode == 0, r.stdout + r.stderr
