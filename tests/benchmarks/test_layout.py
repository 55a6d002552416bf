"""benchmarks/ is a package of scripts run as ``python -m benchmarks.NAME``, over shared helpers.

No script edits ``sys.path`` to reach another (they import ``benchmarks.NAME``); every script
imports as a module of the package; none carries its own copy of a shared helper.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
FILES = sorted(BENCH.glob("*.py"))
SCRIPTS = [p.stem for p in FILES if not p.stem.startswith("_") and p.stem != "gpu_check_report"]
SHARED = {"spearman", "rss_mib", "peak_mib", "peak_gib", "device_info", "is_oom", "fasta_lengths"}
"""Helpers that live in ``benchmarks._common`` or ``biocoreset.stats`` and nowhere else."""


def path_edits(source: str) -> list[str]:
    """Where ``source`` touches ``sys.path`` (or adds a site folder), as ``line: code``."""
    tree = ast.parse(source)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        touches = (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )
        touches |= isinstance(node, ast.ImportFrom) and (
            (node.module == "sys" and any(a.name == "path" for a in node.names))
            or (node.module == "site" and any(a.name == "addsitedir" for a in node.names))
        )
        touches |= isinstance(node, ast.Attribute) and node.attr == "addsitedir"
        if touches:
            hits.append((node.lineno, f"{node.lineno}: {ast.get_source_segment(source, node)}"))
    return [text for _, text in sorted(hits)]


def test_the_checker_finds_path_edits():
    code = "import sys\nsys.path.insert(0, 'x')\nfrom sys import path\nimport site\nsite.addsitedir('y')\n"
    assert [h.split(":")[0] for h in path_edits(code)] == ["2", "3", "5"]
    assert path_edits('"""Never edits ``sys.path``."""\nimport os.path\nos.path.join("a")\n') == []


def test_no_benchmark_edits_sys_path():
    assert len(FILES) > 10 and (BENCH / "__init__.py").is_file()
    edits = {p.name: path_edits(p.read_text(encoding="utf-8")) for p in FILES}
    edits = {name: hits for name, hits in edits.items() if hits}
    assert not edits, f"benchmarks must import benchmarks.NAME, not edit sys.path: {edits}"


def test_no_benchmark_redefines_a_shared_helper():
    copies = {
        p.name: sorted(
            n.name
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(n, ast.FunctionDef) and n.name in SHARED
        )
        for p in FILES
        if p.stem != "_common"
    }
    copies = {name: found for name, found in copies.items() if found}
    assert not copies, f"use benchmarks._common / biocoreset.stats instead of copies: {copies}"


def test_gpu_check_stays_short():
    lines = len((BENCH / "gpu_check.py").read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"benchmarks/gpu_check.py has {lines} lines (at most 400)"


def _child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_every_script_imports_as_a_module_of_the_package(tmp_path):
    code = (
        "import importlib, json, sys, traceback\n"
        "failed = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        module = importlib.import_module('benchmarks.' + name)\n"
        "        assert callable(getattr(module, 'main', None)), 'no main()'\n"
        "    except BaseException:\n"
        "        failed[name] = traceback.format_exc(limit=3)\n"
        "print(json.dumps(failed))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *SCRIPTS],
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(),
        cwd=tmp_path,  # not the repository root: the package is found through PYTHONPATH
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpu_check", "bench_mask_noise", "replication_gate"])
def test_a_script_runs_with_python_dash_m(name, tmp_path):
    """``--help`` of scripts that import a sibling or the shared helpers, run as documented."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stdout[-2000:] + proc.stderr


def test_code_outside_the_package_imports_without_sys_path(tmp_path):
    from benchmarks import _common as common

    (tmp_path / "released_main_t.py").write_text(
        "import released_helper_t\nVALUE = released_helper_t.V + 1\n", encoding="utf-8"
    )
    (tmp_path / "released_helper_t.py").write_text("V = 41\n", encoding="utf-8")
    before = list(sys.path)
    with common.importable_from(tmp_path):
        import released_main_t  # type: ignore[import-not-found]
    assert released_main_t.VALUE == 42 and sys.path == before
    with pytest.raises(ImportError):
        import released_other_t  # type: ignore[import-not-found]  # noqa: F401
    (tmp_path / "released_other_t.py").write_text("W = 1\n", encoding="utf-8")
    module = common.import_file(tmp_path / "released_other_t.py")
    assert module.W == 1 and sys.modules["released_other_t"] is module and sys.path == before
    for name in ("released_main_t", "released_helper_t", "released_other_t"):
        sys.modules.pop(name, None)
