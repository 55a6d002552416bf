"""docs/howto/antibodies.md runs for real: every shell command of the page, as written, in order,
with AntiBERTy's weights and the MMseqs2 binary (minutes on two CPU cores)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "howto" / "antibodies.md"


def page_commands(page: Path = PAGE) -> list[str]:
    """The commands of the page's ``bash`` blocks (continuations joined, comments dropped)."""
    out: list[str] = []
    in_block = False
    pending = ""
    for raw in page.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_block = line == "```bash" if not in_block else False
            continue
        if not in_block or not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+#\s.*$", "", line)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


def test_the_page_shows_the_whole_path():
    cmds = page_commands()
    steps = [
        "python -m biocoreset.bench.antibody.oas",
        "biocoreset dedup",
        "biocoreset score",
        "biocoreset select",
        "biocoreset diagnose",
    ]
    firsts = [next(i for i, c in enumerate(cmds) if c.startswith(s)) for s in steps]
    assert firsts == sorted(firsts), cmds
    assert any("--method mmseqs" in c for c in cmds)
    clustered = next(i for i, c in enumerate(cmds) if c.startswith("biocoreset cluster"))
    assert clustered < next(i for i, c in enumerate(cmds) if "--method cluster" in c)
    assert any("--method cci" in c for c in cmds)
    assert any("--model antiberty" in c for c in cmds)


@pytest.mark.slow
def test_every_command_of_the_page_runs(tmp_path):
    pytest.importorskip("antiberty")
    pytest.importorskip("olga")
    pytest.importorskip("anarci")
    if shutil.which("mmseqs") is None:
        pytest.skip("needs the MMseqs2 binary (tools/install_test_env.sh installs it as root)")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    for cmd in page_commands():
        argv = shlex.split(cmd)
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "biocoreset":
            argv = [sys.executable, "-m", "biocoreset.cli", *argv[1:]]
        elif argv[0] in {"zcat", "head", "ls", "cat"}:
            continue  # the page's peeks at a file
        else:
            pytest.fail(f"unexpected command on the page: {cmd}")
        proc = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
        )
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    for name in ("corpus.fasta", "scores.parquet", "clusters.tsv", "report/report.md"):
        assert (tmp_path / name).exists(), name
    for folder in ("coreset-cci", "coreset-cluster"):
        assert any((tmp_path / folder).iterdir()), folder
