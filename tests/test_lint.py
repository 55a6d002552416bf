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


PACKAGE = ROOT / "src" / "biocoreset"
ROOT_MODULES = {"__init__", "_version", "api", "errors", "protocols", "stats"}


def test_the_package_root_holds_at_most_seven_modules():
    found = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(found) <= 7, (
        f"{len(found)} modules at the package root ({', '.join(found)}); at most 7: put a new "
        "module in the package that owns it (see docs/architecture.md)"
    )
    assert set(found) >= ROOT_MODULES


def test_no_frame_walking_in_the_library():
    walking = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "sys._getframe" in line or "inspect.currentframe" in line
    ]
    assert not walking, f"frame walking in {walking}; pass what the code needs explicitly"
