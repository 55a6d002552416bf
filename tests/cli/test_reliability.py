"""Issue 15: no traceback reaches a CLI user, nothing is silently wrong, nothing is half-written.

Every case asserts a non-zero exit, a one-line message naming the thing at fault, and no traceback
(``main`` is called in-process, so an uncaught exception would fail the test outright).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.errors import OutputExistsError
from biocoreset.store.result import ScoreResult
from biocoreset.testing import tiny_esm


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(24, seed=1), root / "corpus.fa")
    return root


@pytest.fixture(scope="module")
def scores(workspace):
    out = workspace / "s.parquet"
    code = main(
        [
            "score",
            str(workspace / "corpus.fa"),
            "--model",
            str(workspace / "model"),
            "-o",
            str(out),
            "--subset",
            "6",
            "--batch-size",
            "6",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def _fails(capsys, *argv, code=2):
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _score(workspace, tmp_path, *extra, out=None):
    out = out or tmp_path / "o.parquet"
    model = ["--model", workspace / "model"]
    return ["score", workspace / "corpus.fa", *model, "-o", out, "--no-progress", *extra]


def test_not_a_model_folder(workspace, tmp_path, capsys):
    folder = tmp_path / "notamodel"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    argv = ["score", workspace / "corpus.fa", "--model", folder, "-o", tmp_path / "o.parquet"]
    line = _fails(capsys, *argv)
    assert "notamodel" in line and "holds no model" in line


def test_adapter_option_typo(workspace, tmp_path, capsys):
    line = _fails(capsys, *_score(workspace, tmp_path, "--adapter-options", '{"long_polcy": 1}'))
    assert "unknown option 'long_polcy'" in line and "Did you mean 'long_policy'?" in line


def test_garbage_weights_file(workspace, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(300))
    line = _fails(capsys, *_score(workspace, tmp_path, "--weights", garbage))
    assert "garbage.pt" in line and "is not a readable weights file" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(workspace, tmp_path, capsys):
    line = _fails(capsys, *_score(workspace, tmp_path, "--device", "cuda"))
    assert "device 'cuda': CUDA is not available" in line and "--device cpu" in line


def test_unknown_device(workspace, tmp_path, capsys):
    line = _fails(capsys, *_score(workspace, tmp_path, "--device", "tpu9"))
    assert "device 'tpu9' is not a torch device" in line


def test_output_under_a_file(workspace, scores, tmp_path, capsys):
    fasta = workspace / "corpus.fa"
    line = _fails(capsys, *_score(workspace, tmp_path, out=fasta / "out.parquet"))
    assert "cannot be created" in line and "corpus.fa' is a file, not a folder" in line
    line = _fails(capsys, "select", scores, "-o", fasta / "co", "--budget", 2)
    assert "output folder" in line and "is a file, not a folder" in line


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_output_that_cannot_be_created(workspace, scores, tmp_path, capsys):
    line = _fails(capsys, *_score(workspace, tmp_path, out="/proc/nope/x.parquet"))
    assert "the score output '/proc/nope/x.parquet' cannot be created" in line
    line = _fails(capsys, "select", scores, "-o", "/proc/nope/co", "--budget", 2)
    assert "the output folder '/proc/nope/co' cannot be created" in line


def test_score_result_save_refuses_with_a_fix(tmp_path):
    r = ScoreResult(ids=["a"], scores=[1.0], loss=[0.5], length=[3])
    r.save(tmp_path / "s.parquet")
    with pytest.raises(OutputExistsError, match=r"already exists; pass force=True \(--force\)"):
        r.save(tmp_path / "s.parquet")
    with pytest.raises(OutputExistsError, match="is a folder; choose a file path"):
        r.save(tmp_path, force=True)


def test_ctrl_c_during_score_says_how_to_resume(workspace, tmp_path, capsys, monkeypatch):
    from biocoreset.scoring.run import ScoringRun

    out = tmp_path / "o.parquet"
    real = ScoringRun._score_pass

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ScoringRun, "_score_pass", interrupted)
    line = _fails(capsys, *_score(workspace, tmp_path, "--subset", 6, out=out), code=130)
    assert line == "biocoreset score: interrupted; rerun the same command to resume."
    parts = tmp_path / "o.parquet.parts"
    assert (parts / "manifest.json").exists() and not (parts / "lock").exists()  # released
    monkeypatch.setattr(ScoringRun, "_score_pass", real)
    assert main([str(a) for a in _score(workspace, tmp_path, "--subset", 6, out=out)]) == 0
    assert out.exists() and not parts.exists()


@pytest.mark.parametrize("command", ["select", "diagnose"])
def test_bad_score_files(tmp_path, capsys, command):
    import pyarrow as pa
    import pyarrow.parquet as pq

    no_score = tmp_path / "noscore.parquet"
    pq.write_table(pa.table({"id": ["a"], "x": [1.0]}), no_score)
    empty = tmp_path / "empty.parquet"
    ScoreResult(ids=[], scores=[], loss=[], length=[]).save(empty)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not a parquet file")
    extra = ["--budget", 1] if command == "select" else []
    line = _fails(capsys, command, no_score, "-o", tmp_path / "o1", *extra)
    assert "noscore.parquet" in line and "'score'" in line
    line = _fails(capsys, command, empty, "-o", tmp_path / "o2", *extra)
    assert "the score file" in line and "is empty" in line
    line = _fails(capsys, command, junk, "-o", tmp_path / "o3", *extra)
    assert "junk.parquet" in line and "is not a readable Parquet score file" in line
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir())


def test_select_refuses_a_changed_corpus(workspace, scores, tmp_path, capsys):
    records = synthetic_rna_corpus(24, seed=1)
    rid, seq = records[5]
    changed = [*records[:5], (rid, seq[::-1] + "A"), *records[6:]]
    corpus = write_fasta(changed, tmp_path / "changed.fa")
    out = tmp_path / "co"
    line = _fails(capsys, "select", scores, "-o", out, "--budget", 4, "--sequences", corpus)
    assert f"record {rid!r} (record 6) is not the sequence that was scored" in line
    assert "--allow-changed-corpus" in line
    assert not out.exists()
    missing = write_fasta(records[:-1], tmp_path / "short.fa")
    line = _fails(capsys, "select", scores, "-o", out, "--budget", 4, "--sequences", missing)
    assert f"scored record {records[-1][0]!r} (row 24) is missing" in line
    code = main(
        [str(a) for a in ("select", scores, "-o", out, "--budget", 4, "--sequences", corpus)]
        + ["--allow-changed-corpus"]
    )
    assert code == 0 and (out / "coreset.fasta").exists()
    # the unchanged corpus passes the check
    assert main(["select", str(scores), "-o", str(tmp_path / "ok"), "--budget", "4"]) == 0


def test_failed_select_leaves_nothing(workspace, scores, tmp_path, capsys):
    short = write_fasta(synthetic_rna_corpus(24, seed=1)[:3], tmp_path / "short.fa")
    out = tmp_path / "co"
    argv = ["select", scores, "-o", out, "--budget", 20, "--sequences", short]
    line = _fails(capsys, *argv, "--allow-changed-corpus")
    assert "lacks" in line and "of the selected ids" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.fa"]  # no folder, no temporary
    # an existing selection is kept as it was when a --force rerun fails
    assert main([str(a) for a in ("select", scores, "-o", out, "--budget", 4)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fails(capsys, *argv, "--allow-changed-corpus", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["co", "short.fa"]


def test_a_second_scoring_process_is_refused(workspace, tmp_path, capsys):
    import subprocess

    out = tmp_path / "o.parquet"
    parts = tmp_path / "o.parquet.parts"
    parts.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (parts / "lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        line = _fails(capsys, *_score(workspace, tmp_path, out=out))
        assert f"is being written by another process (pid {other.pid} on" in line
        assert "lock file" in line
        line = _fails(capsys, *_score(workspace, tmp_path, "--force", out=out))  # not even --force
        assert f"pid {other.pid}" in line
    finally:
        other.kill()
        other.wait()
    assert not out.exists() and (parts / "lock").exists()


def _run_toml(workspace, out, methods='["cci", "topk"]', data=None, extra=""):
    return f"""
output = "{out}"
[data]
path = "{data or workspace / "corpus.fa"}"
subset = 6
[model]
path = "{workspace / "model"}"
{extra}
[finetune]
enabled = false
[score]
batch_size = 6
[select]
methods = {methods}
budget = 4
"""


def test_run_validates_before_any_work(workspace, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run"
    cfg.write_text(_run_toml(workspace, out, methods='["cci", "topkk"]'))
    line = _fails(capsys, "run", cfg)
    assert "unknown selector 'topkk'" in line and "Did you mean 'topk'?" in line
    assert not out.exists()
    cfg.write_text(_run_toml(workspace, out, data=tmp_path / "nope.fa"))
    line = _fails(capsys, "run", cfg)
    assert "data.path" in line and "nope.fa' does not exist" in line
    assert not out.exists()
    cfg.write_text(_run_toml(workspace, out, extra='options = {long_polcy = "truncate"}'))
    line = _fails(capsys, "run", cfg)
    assert "unknown option 'long_polcy' for adapter 'hf'" in line
    cfg.write_text(
        _run_toml(workspace, out).replace("[score]\n", "[score]\ncurvature = 'diagnal'\n")
    )
    line = _fails(capsys, "run", cfg)
    assert "unknown curvature 'diagnal'" in line and "Did you mean 'diagonal'?" in line
    assert not out.exists()


def test_run_that_failed_before_any_step_does_not_claim_the_folder(workspace, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run"
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(200))
    cfg.write_text(_run_toml(workspace, out, extra=f'weights = "{garbage}"'))
    line = _fails(capsys, "run", cfg)  # found only when the model is loaded
    assert "garbage.pt" in line
    cfg.write_text(_run_toml(workspace, out))  # fixed: another configuration, no --force needed
    code = main(["run", str(cfg), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    state = json.loads((out / "run.json").read_text())
    assert state["config"]["model"]["weights"] is None and "select-topk" in state["steps"]


def test_run_force_does_not_delete_a_folder_another_process_is_scoring_into(
    workspace, tmp_path, capsys
):
    import socket
    import subprocess
    import sys

    cfg = tmp_path / "run.toml"
    out = tmp_path / "run"
    cfg.write_text(_run_toml(workspace, out))
    parts = out / "scores.parquet.parts"
    parts.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (parts / "lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        line = _fails(capsys, "run", cfg, "--force")
        assert "another process" in line and str(other.pid) in line
        assert (parts / "lock").exists()  # nothing was deleted
    finally:
        other.kill()
        other.wait()
