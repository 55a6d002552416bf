"""Issue 27: the reliability invariants, checked over paths, flags and commands (hypothesis).

1. A command never deletes or changes a path it did not create (the user's files, its inputs).
2. Every user-facing failure is one line (``biocoreset <command>: error: ...``, no traceback) and
   a nonzero exit status.
3. Every output is all-old or all-new (see ``test_replace_crash.py`` and
   ``tests/store/test_replace_dir.py`` for the kill points).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.testing import tiny_esm

OUTPUTS = ["user_file", "user_folder", "input_itself", "input_parent", "dot", "fresh",
           "link_to_user_folder", "dangling_link", "fresh_with_user_parts"]  # fmt: skip
"""Output paths; issue 31 added a symbolic link to a user's folder (written through), a link to
nothing, and a new output beside a user's folder named ``<output>.parts``."""
COMMANDS = ["select", "diagnose", "score", "finetune", "pretrain"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(10, seed=1), root / "corpus.fa")
    argv = ["score", root / "corpus.fa", "--model", root / "model", "-o", root / "s.parquet",
            "--subset", 4, "--no-progress"]  # fmt: skip
    with contextlib.redirect_stderr(io.StringIO()):
        assert main([str(a) for a in argv]) == 0
    return root


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _argv(command: str, ws: Path, inp: Path, out: str) -> list[str]:
    corpus, model, scores = inp / "c.fa", ws / "model", inp / "s.parquet"
    return [str(a) for a in {
        "select": ["select", scores, "-o", out, "--budget", 2, "--sequences", corpus],
        "diagnose": ["diagnose", scores, "-o", out],
        "score": ["score", corpus, "--model", model, "-o", out, "--subset", 4],
        "finetune": ["finetune", corpus, "--model", model, "-o", out, "--max-steps", 1,
                     "--subset", 4, "--diagnostic-samples", 2],
        "pretrain": ["pretrain", corpus, "--model", model, "-o", out, "--max-steps", 1,
                     "--warmup-steps", 0, "--batch-size", 4],
    }[command]] + ["--no-progress"]  # fmt: skip


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(COMMANDS),
    output=st.sampled_from(OUTPUTS),
    force=st.booleans(),
)
@example(command="score", output="fresh_with_user_parts", force=True)
@example(command="select", output="link_to_user_folder", force=True)
@example(command="finetune", output="link_to_user_folder", force=True)
@example(command="diagnose", output="dangling_link", force=False)
def test_no_user_file_is_lost_and_failures_are_one_line(ws, command, output, force):
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inp = root / "inp"
        inp.mkdir()
        (inp / "c.fa").write_bytes((ws / "corpus.fa").read_bytes())
        (inp / "s.parquet").write_bytes((ws / "s.parquet").read_bytes())
        (root / "user.txt").write_text("precious")
        (root / "ufolder").mkdir()
        (root / "ufolder" / "thesis.txt").write_text("precious")
        main_input = inp / ("s.parquet" if command in ("select", "diagnose") else "c.fa")
        out = {
            "user_file": str(root / "user.txt"),
            "user_folder": str(root / "ufolder"),
            "input_itself": str(main_input),
            "input_parent": str(inp),
            "dot": ".",
            "fresh": str(root / "new" / ("o.parquet" if command == "score" else "o")),
            "link_to_user_folder": str(root / "link"),
            "dangling_link": str(root / "dangling"),
            "fresh_with_user_parts": str(root / ("o.parquet" if command == "score" else "o")),
        }[output]
        (root / "link").symlink_to(root / "ufolder")
        (root / "dangling").symlink_to(root / "nowhere")
        if output == "fresh_with_user_parts":  # a user's folder, not a work folder
            (root / f"{out}.parts").mkdir()
            (root / f"{out}.parts" / "thesis.txt").write_text("precious")
        before = _tree(root)
        err = io.StringIO()
        os.chdir(root)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(_argv(command, ws, inp, out) + (["--force"] if force else []))
        finally:
            os.chdir(here)
        after = _tree(root)
        lost = {k: v for k, v in before.items() if after.get(k) != v}
        assert (root / "link").is_symlink() and (root / "dangling").is_symlink()
        assert not lost, (command, output, force, lost, err.getvalue())
        errors = [ln for ln in err.getvalue().splitlines() if ": warning: " not in ln and ln]
        if code != 0:
            assert len(errors) == 1 and errors[0].startswith(f"biocoreset {command}: error: ")
            assert "Traceback" not in err.getvalue()
        else:
            # a new path; or a user's folder that select and diagnose add their files to (kept)
            ok = output == "fresh" or (
                output in ("user_folder", "link_to_user_folder")
                and command in ("select", "diagnose")
            )
            ok = ok or (output == "fresh_with_user_parts" and command != "score")
            assert ok, (command, output, force)
        leftovers = [p for p in root.rglob(".*") if p.name not in (".", "..")]
        assert not leftovers, leftovers
