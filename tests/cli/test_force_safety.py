"""Issue 27: ``--force`` never destroys what is not the command's own output, nor an input; the
stale staging files of a killed run are removed by the next one (its own only)."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.testing import tiny_esm


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("force")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(12, seed=1), root / "corpus.fa")
    return root


def _fails(capsys, *argv, code=2):
    capsys.readouterr()
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _pretrain(ws, out, *extra):
    return ["pretrain", ws / "corpus.fa", "-o", out, "--model", ws / "model", "--max-steps", 1,
            "--warmup-steps", 0, "--batch-size", 4, "--no-progress", *extra]  # fmt: skip


def _user_folder(path):
    path.mkdir()
    (path / "thesis.txt").write_text("precious")
    return path


def test_pretrain_force_refuses_a_user_folder(ws, tmp_path, capsys):
    user = _user_folder(tmp_path / "userdir")
    line = _fails(capsys, *_pretrain(ws, user, "--force"))
    assert "is not a pretrain output" in line and "userdir" in line
    assert (user / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]


def test_pretrain_force_keeps_the_corpus_inside_its_folder(ws, tmp_path, capsys):
    out = tmp_path / "run"
    argv = _pretrain(ws, out)
    assert main([str(a) for a in argv]) == 0
    corpus = out / "c.fa"  # the user puts the corpus into the run folder, and reruns
    corpus.write_bytes((ws / "corpus.fa").read_bytes())
    argv[1] = corpus
    (out / "notes.txt").write_text("mine")
    assert main([str(a) for a in [*argv, "--force"]]) == 0
    assert corpus.read_bytes() == (ws / "corpus.fa").read_bytes()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "final" / "biocoreset-model.json").exists()
    assert not [p for p in tmp_path.rglob(".*")]  # no staging leftovers


def test_pretrain_dot_refused_before_anything(ws, tmp_path, capsys, monkeypatch):
    user = _user_folder(tmp_path / "cwd")
    monkeypatch.chdir(user)
    line = _fails(capsys, *_pretrain(ws, ".", "--force"))
    assert "not a pretrain output" in line
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]


def test_score_refuses_its_own_input_as_output(ws, tmp_path, capsys):
    inp = tmp_path / "inp"
    inp.mkdir()
    corpus = inp / "c.fa"
    corpus.write_bytes((ws / "corpus.fa").read_bytes())
    line = _fails(capsys, "score", corpus, "--model", ws / "model", "-o", corpus, "--force")
    assert "is the input" in line and "c.fa" in line
    assert corpus.read_bytes() == (ws / "corpus.fa").read_bytes()


def test_finetune_force_refuses_a_user_folder_and_its_inputs(ws, tmp_path, capsys):
    user = _user_folder(tmp_path / "userdir")
    base = ["finetune", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1, "--subset", 4,
            "--diagnostic-samples", 2, "--no-progress"]  # fmt: skip
    line = _fails(capsys, *base, "-o", user, "--force")
    assert "is not a finetune output" in line
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]
    line = _fails(capsys, *base, "-o", ws / "model", "--force")  # the model it reads
    assert "input" in line
    assert (ws / "model" / "config.json").exists()


def test_finetune_rerun_removes_its_stale_tmp_and_keeps_user_files(ws, tmp_path, capsys):
    out = tmp_path / "ft"
    base = ["finetune", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1, "--subset", 4,
            "--diagnostic-samples", 2, "--no-progress", "-o", out]  # fmt: skip
    assert main([str(a) for a in base]) == 0
    (out / ".model.pt.ab12cd34.tmp").write_bytes(b"")  # a kill -9 leftover of atomic_path
    (out / "notes.txt").write_text("mine")
    stale = tmp_path / ".ft.999999999.abcdefgh.tmp"  # a killed run's stage
    stale.mkdir()
    (stale / "model.pt").write_bytes(b"partial")
    old = (out / "model.pt").read_bytes()
    assert main([str(a) for a in [*base, "--force", "--seed", "3"]]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]
    assert not (out / ".model.pt.ab12cd34.tmp").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "model.pt").read_bytes() != old


def _scores(ws, tmp_path):
    out = tmp_path / "s.parquet"
    argv = ["score", ws / "corpus.fa", "--model", ws / "model", "-o", out, "--subset", 4,
            "--batch-size", 6, "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out


def test_select_refuses_a_folder_holding_its_input_and_cleans_its_stage(ws, tmp_path, capsys):
    scores = _scores(ws, tmp_path)
    line = _fails(capsys, "select", scores, "-o", tmp_path, "--budget", 2, "--force")
    assert "holds the input" in line
    stale = tmp_path / ".sel.999999999.abcdefgh.tmp"
    stale.mkdir()
    (stale / "coreset.fasta").write_text(">half")
    legacy = tmp_path / ".sel.ab_12cd3.tmp"  # the staging name of earlier versions
    legacy.mkdir()
    mine = tmp_path / ".sel.keep.tmp"
    mine.mkdir()
    assert main(["select", str(scores), "-o", str(tmp_path / "sel"), "--budget", "2"]) == 0
    assert not stale.exists() and not legacy.exists() and mine.exists()


def _write_scores(path, ids, meta_bytes=None):
    table = pa.table({"id": ids, "score": [float(i) for i in range(len(ids))]})
    if meta_bytes is not None:
        table = table.replace_schema_metadata({b"biocoreset": meta_bytes})
    pq.write_table(table, path)
    return path


def test_malformed_metadata_is_one_line(tmp_path, capsys):
    f = _write_scores(tmp_path / "s.parquet", ["a", "b", "c"], b"{not json")
    line = _fails(capsys, "select", f, "-o", tmp_path / "o", "--budget", 1)
    assert "s.parquet" in line and "not valid JSON" in line


@pytest.mark.parametrize("meta", [None, b'{"negated": false}'])
def test_duplicate_ids_refused(tmp_path, capsys, meta):
    f = _write_scores(tmp_path / "s.parquet", ["a", "b", "a", "c"], meta)
    line = _fails(capsys, "select", f, "-o", tmp_path / "o", "--budget", 1)
    assert "'a' twice (rows 0 and 2)" in line
    assert not (tmp_path / "o").exists()


def test_moved_corpus_is_named(ws, tmp_path, capsys):
    corpus = tmp_path / "c.fa"
    corpus.write_bytes((ws / "corpus.fa").read_bytes())
    scores = tmp_path / "s.parquet"
    argv = ["score", corpus, "--model", ws / "model", "-o", scores, "--subset", 4, "--no-progress"]
    assert main([str(a) for a in argv]) == 0
    corpus.rename(tmp_path / "moved.fa")
    assert main(["select", str(scores), "-o", str(tmp_path / "sel"), "--budget", "2"]) == 0
    note = json.loads((tmp_path / "sel" / "selection.json").read_text())["note"]
    assert f"corpus file {str(corpus)!r}, which is missing" in note


def test_run_messages(ws, tmp_path, capsys):
    toml = tmp_path / "run.toml"
    afile = tmp_path / "afile"
    afile.write_text("x")
    toml.write_text(f'output = "{afile}"\n[data]\npath = "{ws / "corpus.fa"}"\n[model]\npath = '
                    f'"{ws / "model"}"\n')  # fmt: skip
    line = _fails(capsys, "run", toml, "--force")
    assert "is a file" in line and "pid ?" not in line
    user = _user_folder(tmp_path / "userdir")
    (user / "finetune").mkdir()  # a user's folder that happens to share a run's name
    (user / "select-x").mkdir()
    toml.write_text(toml.read_text().replace(str(afile), str(user)))
    line = _fails(capsys, "run", toml, "--force")
    assert "not a biocoreset run" in line and "pass --force" not in line
    assert sorted(p.name for p in user.iterdir()) == ["finetune", "select-x", "thesis.txt"]


def test_cli_says_force_not_force_true(ws, tmp_path, capsys):
    scores = _scores(ws, tmp_path)
    line = _fails(capsys, "score", ws / "corpus.fa", "--model", ws / "model", "-o", scores)
    assert "--force" in line and "force=True" not in line


def test_score_api_takes_a_model_path(ws):
    from biocoreset import score

    got = score(str(ws / "model"), str(ws / "corpus.fa"), subset=4, progress=False)
    assert len(got.ids) == 12 and all(map(float, got.scores))


def test_pid_is_ours_in_stage_names(ws, tmp_path):
    scores = _scores(ws, tmp_path)
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(str(src)))
        return real(src, dst)

    import biocoreset.store.atomic as atomic

    atomic.os.replace = spy
    try:
        assert main(["select", str(scores), "-o", str(tmp_path / "sel"), "--budget", "2"]) == 0
    finally:
        atomic.os.replace = real
    assert any(s.startswith(f".sel.{os.getpid()}.") for s in seen)


@pytest.mark.slow
def test_run_force_killed_keeps_the_old_results_until_replaced(ws, tmp_path, capsys, monkeypatch):
    """Issue 31: --force deletes nothing up front; a killed forced run leaves the old results
    (run.json claims no step and lists them as to be replaced); a plain rerun redoes every step."""
    import biocoreset.train.finetune as ft

    out = tmp_path / "run"
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'output = "{out}"\n[data]\npath = "{ws / "corpus.fa"}"\nsubset = 4\n[model]\npath = '
        f'"{ws / "model"}"\n[finetune]\nmax_steps = 1\ndiagnostic_samples = 2\n[select]\n'
        'methods = ["topk"]\nbudget = 3\n'
    )
    assert main(["run", str(toml), "--no-progress"]) == 0
    (out / "notes.txt").write_text("mine")
    old_scores = (out / "scores.parquet").read_bytes()
    old_ids = (out / "select-topk" / "coreset_ids.txt").read_bytes()

    def killed(*a, **k):
        raise KeyboardInterrupt  # a kill during the forced run's first step

    monkeypatch.setattr(ft, "finetune", killed)
    assert main(["run", str(toml), "--force", "--no-progress"]) == 130
    monkeypatch.undo()
    state = json.loads((out / "run.json").read_text())
    assert state["steps"] == {}
    assert {"finetune", "scores.parquet", "select-topk"} <= set(state["replacing"])
    assert (out / "scores.parquet").read_bytes() == old_scores  # the old results stay
    assert (out / "select-topk" / "coreset_ids.txt").read_bytes() == old_ids
    assert main(["run", str(toml), "--no-progress"]) == 0  # a plain rerun redoes every step
    state = json.loads((out / "run.json").read_text())
    assert set(state["steps"]) == {"finetune", "score", "select-topk"}
    assert state["replacing"] == []
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.toml"]  # no lock left
