"""The code base stays ruff-clean (``ruff check`` and ``ruff format --check``, settings in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "examples", "benchmarks"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    pytest.importorskip("ruff", reason="ruff is in the dev extra (installed by the test command)")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"ruff {' '.join(command)} failed; run `ruff {' '.join(command[:1])} "
        f"{'--fix ' if command == ['check'] else ''}{' '.join(PATHS)}`:\n{proc.stdout}{proc.stderr}"
    )
