"""The Sphinx documentation builds with warnings as errors, and its quick examples run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    """``sphinx -W --keep-going -E -b html docs OUT``, once for this module."""
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("docs-html")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.slow
def test_docs_build_without_warnings(built_docs):
    for page in (
        "index",
        "quickstart",
        "concepts",
        "plugins",
        "benchmarks",
        "replication",
        "changelog",
        "howto/index",
        "reference/cli",
    ):
        assert (built_docs / f"{page}.html").is_file(), page


@pytest.mark.slow
def test_every_benchmark_page_is_included(built_docs):
    html = (built_docs / "benchmarks.html").read_text(encoding="utf-8")
    pages = sorted(DOCS.glob("benchmarks-*.md"))
    assert pages
    for page in pages:
        heading = next(
            line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")
        )
        words = re.sub(r"[`#*]", "", heading).split()[:2]
        assert all(w in html for w in words), f"{page.name} is not included in benchmarks.html"


@pytest.mark.slow
def test_replication_page_includes_the_generated_results(built_docs):
    html = (built_docs / "replication.html").read_text(encoding="utf-8")
    for needle in ("The answer, plainly", "Wall time", "Headline metrics", "claims, checked"):
        assert needle in html, needle
    assert (DOCS / "replication.png").is_file() and "replication.png" in html


@pytest.mark.slow
def test_cli_reference_lists_every_command(built_docs):
    from biocoreset.cli import build_parser

    html = (built_docs / "reference" / "cli.html").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(
        a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
    ).choices
    for name in commands:
        assert f"biocoreset {name}" in html, name


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_quickstart_python_example_runs(tmp_path):
    """The quickstart's Python example (seconds on a CPU) runs as written."""
    (code,) = _python_blocks(DOCS / "quickstart.md")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().startswith("[")


@pytest.mark.slow
def test_budget_howto_example_runs(tmp_path):
    """The budget guide's ``select`` calls work on a small score result."""
    (code,) = _python_blocks(DOCS / "howto" / "budget.md")
    setup = (
        "from biocoreset import score\n"
        "from biocoreset.testing import tiny_esm, random_rna\n"
        "model, tokenizer = tiny_esm()\n"
        "result = score(model, random_rna(400), tokenizer=tokenizer, subset=20, batch_size=16)\n"
    )
    code = code.replace("20_000", "20")
    proc = subprocess.run(
        [sys.executable, "-c", setup + code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
