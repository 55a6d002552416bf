"""The code base stays ruff-clean (``ruff check`` and ``ruff format --check``, settings in pyproject)."""

from __future__ import annotations

import re
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
ROOT_MODULES = {"__init__", "_version", "api", "capabilities", "errors", "protocols", "stats"}


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


PROBED = ("adapter", "scorer", "engine", "curvature", "factory")
"""Components whose members are declared (protocols, ``AdapterBase``): never probed by name."""


def _probes(source: str) -> list[tuple[int, str]]:
    """``(line, component)`` of each ``getattr``/``hasattr`` call on a component of
    :data:`PROBED`: a name or attribute that says it (``adapter``, ``self.engine``,
    ``curvature``...; ``adp`` is an adapter), or ``self`` inside a class whose name says it."""
    import ast

    def says(name: str) -> str | None:
        words = {w.lower() for w in re.findall(r"[a-z0-9]+|[A-Z][a-z0-9]*", name)}
        if "adp" in words:
            return "adapter"
        return next((w for w in PROBED if w in words or f"{w}s" in words), None)

    def names(node: ast.expr, in_class: str | None) -> str | None:
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
        if name == "self":
            return in_class
        return says(name)

    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_class: str | None) -> None:
        if isinstance(node, ast.ClassDef):
            in_class = says(node.name)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and (word := names(node.args[0], in_class)) is not None
        ):
            found.append((node.lineno, word))
        for child in ast.iter_child_nodes(node):
            visit(child, in_class)

    visit(ast.parse(source), None)
    return found


def test_the_probe_finder_finds_probes():
    source = (
        "x = getattr(adapter, 'loss_mode', 'masked')\n"
        "y = hasattr(self.adapter, 'embed')\n"
        "z = getattr(adp, 'masking', None)\n"
        "class MyAdapterMixin:\n"
        "    def f(self):\n"
        "        return getattr(self, 'truncation', None)\n"
        "w = getattr(config, 'mask_draws', 1)\n"
        "a = getattr(scorer, 'needs_curvature', False)\n"
        "b = getattr(self.engine, 'name', 'loop')\n"
        "c = hasattr(curvature, 'state_dict')\n"
        "d = getattr(raw_factory, 'from_path', None)\n"
        "class HookEngine:\n"
        "    def g(self):\n"
        "        return getattr(self, 'blocks', ())\n"
        "class ScoreResult:\n"
        "    def h(self):\n"
        "        return getattr(self, 'loss')\n"
    )
    assert _probes(source) == [
        (1, "adapter"),
        (2, "adapter"),
        (3, "adapter"),
        (6, "adapter"),
        (8, "scorer"),
        (9, "engine"),
        (10, "curvature"),
        (11, "factory"),
        (14, "engine"),
    ]


# Where a probe is the contract: capabilities.py reads an adapter that does not subclass
# AdapterBase (capabilities()); adapters/ read their own optional members; plugins/options.py reads the one
# marker declare_options() puts on a factory (the documented way to declare a factory's options).
PROBES_ALLOWED = {
    "adapter": lambda rel: rel.name == "capabilities.py" or rel.parts[0] == "adapters",
    "factory": lambda rel: rel.as_posix() == "plugins/options.py",
}


def test_no_component_probes():
    """Optional members are declared once with their defaults (adapter capabilities on
    ``protocols.AdapterBase``, read as ``capabilities(adapter).<member>``; the class capabilities
    as its classmethods; scorer, engine and curvature members on their protocols), never probed
    with ``getattr``/``hasattr``."""
    probes = [
        f"{rel}:{line} ({word})"
        for p in sorted(PACKAGE.rglob("*.py"))
        for rel in [p.relative_to(PACKAGE)]
        for line, word in _probes(p.read_text(encoding="utf-8"))
        if not PROBES_ALLOWED.get(word, lambda rel: False)(rel)
    ]
    assert not probes, (
        f"component probed with getattr/hasattr at {probes}; declare the member with its default "
        "(biocoreset.protocols: AdapterBase, read as capabilities(adapter).<member>, or the "
        "component's protocol) and read it directly"
    )
