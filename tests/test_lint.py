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


def _adapter_probes(source: str) -> list[int]:
    """Line numbers of ``getattr``/``hasattr`` calls on an adapter: a name or attribute that says
    ``adapter`` (or ``adp``), or ``self`` inside an adapter class or mixin."""
    import ast

    def names_adapter(node: ast.expr, in_adapter_class: bool) -> bool:
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
        if name == "self":
            return in_adapter_class
        return "adapter" in name.lower() or name == "adp"

    found: list[int] = []

    def visit(node: ast.AST, in_adapter_class: bool) -> None:
        if isinstance(node, ast.ClassDef):
            in_adapter_class = "adapter" in node.name.lower()
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and names_adapter(node.args[0], in_adapter_class)
        ):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_adapter_class)

    visit(ast.parse(source), False)
    return found


def test_the_adapter_probe_finder_finds_probes():
    source = (
        "x = getattr(adapter, 'loss_mode', 'masked')\n"
        "y = hasattr(self.adapter, 'embed')\n"
        "z = getattr(adp, 'masking', None)\n"
        "class MyAdapterMixin:\n"
        "    def f(self):\n"
        "        return getattr(self, 'truncation', None)\n"
        "w = getattr(config, 'mask_draws', 1)\n"
    )
    assert _adapter_probes(source) == [1, 2, 3, 6]


def test_no_adapter_probes_outside_protocols_and_adapters():
    """Optional adapter capabilities are read through ``protocols.capabilities`` (their defaults
    live on ``protocols.AdapterBase``), never probed with ``getattr``/``hasattr``."""
    probes = [
        f"{p.relative_to(PACKAGE)}:{line}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "protocols.py" and p.relative_to(PACKAGE).parts[0] != "adapters"
        for line in _adapter_probes(p.read_text(encoding="utf-8"))
    ]
    assert not probes, (
        f"adapter probed with getattr/hasattr at {probes}; declare the member with its default on "
        "biocoreset.protocols.AdapterBase and read it as capabilities(adapter).<member>"
    )
