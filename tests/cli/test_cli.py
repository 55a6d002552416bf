"""The `biocoreset` command: finetune, score, select, run, plugins, demo — and its errors; `score
--mask-draws`, `select --debias length`, the stability and composition lines."""

from __future__ import annotations

import json

import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.errors import ConfigError
from biocoreset.run.file import load_run_config, run_config_from_dict
from biocoreset.store.result import load_scores
from biocoreset.testing import tiny_esm


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(40, seed=1), root / "corpus.fa")
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plugins(capsys):
    code, out, _ = _run(capsys, "plugins", "--kind", "selector")
    assert code == 0 and "cci" in out and "topk" in out


def test_finetune_score_select(workspace, tmp_path, capsys):
    corpus, model = workspace / "corpus.fa", workspace / "model"
    code, out, err = _run(
        capsys,
        "finetune",
        corpus,
        "--model",
        model,
        "-o",
        tmp_path / "ft",
        "--subset",
        16,
        "--batch-size",
        8,
        "--lr",
        "1e-3",
        "--warmup-steps",
        1,
        "--no-progress",
    )
    assert code == 0, err
    assert "before: mean loss" in out and (tmp_path / "ft" / "model.pt").exists()
    scores = tmp_path / "s.parquet"
    code, out, err = _run(
        capsys,
        "score",
        corpus,
        "--model",
        model,
        "--weights",
        tmp_path / "ft" / "model.pt",
        "-o",
        scores,
        "--subset",
        16,
        "--batch-size",
        8,
        "--shard-size",
        16,
        "--no-progress",
    )
    assert code == 0, err
    assert "scored 40 sequences" in out and "read 40 records, kept 40" in out
    result = load_scores(scores)
    assert len(result) == 40 and result.metadata["subset_size"] == 16
    code, out, err = _run(
        capsys, "select", scores, "-o", tmp_path / "cci", "--budget", "0.25", "--no-progress"
    )
    assert code == 0, err
    files = {p.name for p in (tmp_path / "cci").iterdir()}
    assert files == {"coreset.fasta", "coreset_ids.txt", "selection.png", "selection.json"}
    ids = (tmp_path / "cci" / "coreset_ids.txt").read_text().split()
    assert len(ids) == 10
    fasta_ids = [
        line[1:]
        for line in (tmp_path / "cci" / "coreset.fasta").read_text().splitlines()
        if line[0] == ">"
    ]
    assert sorted(fasta_ids) == sorted(ids)
    summary = json.loads((tmp_path / "cci" / "selection.json").read_text())
    assert summary["cci"]["cut"] == 2 and sum(summary["cci"]["taken"]) == 10
    assert (tmp_path / "cci" / "selection.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = _run(
        capsys, "select", scores, "-o", tmp_path / "top", "--method", "topk", "--budget", 5
    )
    assert code == 0, err
    top = set((tmp_path / "top" / "coreset_ids.txt").read_text().split())
    assert top == {result.ids[i] for i in result.scores.argsort()[-5:]}


def test_score_rerun_resumes_or_refuses(workspace, tmp_path, capsys):
    corpus, model = workspace / "corpus.fa", workspace / "model"
    args = [
        "score",
        corpus,
        "--model",
        model,
        "-o",
        tmp_path / "s.parquet",
        "--subset",
        8,
        "--no-progress",
    ]
    assert _run(capsys, *args)[0] == 0
    code, _, err = _run(capsys, *args)
    assert code == 2 and "already exists; pass --force to overwrite" in err
    assert _run(capsys, *args, "--force")[0] == 0


def test_score_bad_inputs(workspace, tmp_path, capsys):
    model = workspace / "model"
    not_fasta = tmp_path / "table.fasta"
    not_fasta.write_text("id,sequence\na,ACGU\n")
    code, _, err = _run(capsys, "score", not_fasta, "--model", model, "-o", tmp_path / "a.parquet")
    assert code == 2 and "is not a FASTA file" in err
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    code, _, err = _run(capsys, "score", empty, "--model", model, "-o", tmp_path / "b.parquet")
    assert code == 2 and "is empty" in err
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGU\n>b\nACXU\n")
    code, _, err = _run(
        capsys, "score", bad, "--model", model, "-o", tmp_path / "c.parquet", "--subset", 1
    )
    assert code == 2 and "record 'b' (record 2 of" in err and "residue 3 is 'X'" in err
    code, out, err = _run(
        capsys,
        "score",
        bad,
        "--model",
        model,
        "-o",
        tmp_path / "c.parquet",
        "--subset",
        1,
        "--invalid",
        "replace",
        "--no-progress",
    )
    assert code == 0, err
    assert "replaced 1 letters in 1 records" in out
    assert not (tmp_path / "a.parquet").exists()


def test_select_errors(workspace, tmp_path, capsys):
    scores = tmp_path / "s.parquet"
    assert (
        _run(
            capsys,
            "score",
            workspace / "corpus.fa",
            "--model",
            workspace / "model",
            "-o",
            scores,
            "--subset",
            8,
            "--no-progress",
        )[0]
        == 0
    )
    code, _, err = _run(capsys, "select", scores, "-o", tmp_path / "x", "--budget", 41)
    assert code == 2 and "budget 41 exceeds the 40 scored sequences" in err
    assert _run(capsys, "select", scores, "-o", tmp_path / "x", "--budget", 4)[0] == 0
    code, _, err = _run(capsys, "select", scores, "-o", tmp_path / "x", "--budget", 4)
    assert code == 2 and "already holds" in err and "--force" in err
    assert _run(capsys, "select", scores, "-o", tmp_path / "x", "--budget", 4, "--force")[0] == 0
    with pytest.raises(SystemExit):
        main(["select", str(scores), "-o", str(tmp_path / "y"), "--budget", "many"])


def _toml(workspace, out, extra=""):
    return f"""
output = "{out}"
[data]
path = "{workspace / "corpus.fa"}"
subset = 12
[model]
path = "{workspace / "model"}"
[finetune]
lr = 1e-3
warmup_steps = 1
batch_size = 6
diagnostic_samples = 6
[score]
batch_size = 6
shard_size = 12
[select]
methods = ["cci", "topk"]
budget = 8
{extra}
"""


def test_run_from_toml_and_resume(workspace, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(_toml(workspace, tmp_path / "run"))
    code, _, err = _run(capsys, "run", cfg, "--no-progress")
    assert code == 0, err
    run = tmp_path / "run"
    for rel in (
        "run.json",
        "finetune/model.pt",
        "finetune/finetune.json",
        "scores.parquet",
        "select-cci/coreset.fasta",
        "select-topk/selection.png",
    ):
        assert (run / rel).exists(), rel
    state = json.loads((run / "run.json").read_text())
    assert set(state["steps"]) == {"finetune", "score", "select-cci", "select-topk"}
    assert (
        state["config"]["finetune"]["lr"] == 1e-3
        and state["config"]["score"]["curvature"] == "diagonal"
    )
    mtime = (run / "scores.parquet").stat().st_mtime_ns
    code, _, err = _run(capsys, "run", cfg, "--no-progress")  # finished steps are skipped
    assert code == 0, err
    assert (run / "scores.parquet").stat().st_mtime_ns == mtime
    cfg.write_text(_toml(workspace, tmp_path / "run").replace("budget = 8", "budget = 9"))
    code, _, err = _run(capsys, "run", cfg)
    assert code == 2 and "another configuration" in err and "--force" in err


def test_run_paper_compat_without_finetuning(workspace, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    text = _toml(workspace, tmp_path / "pc").replace(
        "[finetune]\n", "[finetune]\nenabled = false\n"
    )
    cfg.write_text('preset = "paper-compat"\n' + text)
    code, _, err = _run(capsys, "run", cfg, "--no-progress")
    assert code == 0, err
    meta = load_scores(tmp_path / "pc" / "scores.parquet").metadata
    assert meta["loss_mode"] == "paper-compat" and meta["negated"] and meta["damping"] == 1e-8
    assert meta["fit_on"] == "all" and meta["seed"] == 42
    assert not (tmp_path / "pc" / "finetune" / "model.pt").exists()
    summary = json.loads((tmp_path / "pc" / "select-cci" / "selection.json").read_text())
    assert summary["options"] == {
        "beta": 0.1,
        "strata": 50,
        "cut": "lowest",  # auto: the most influential end of the negated scores
        "edges": "released",
        "ties": "numpy",
        "rng": "legacy",
    }
    assert summary["seed"] == 42


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[score]\ndampng = 1e-3\n", "unknown key 'score.dampng'.*Did you mean 'damping'"),
        ("[scoring]\nx = 1\n", "unknown key 'scoring'.*Did you mean 'score'"),
        (
            '[score]\nbatch_size = "16"\n',
            r"score.batch_size must be an integer, got '16' \(a string\)",
        ),
        ("[finetune]\nlr = true\n", r"finetune.lr must be a number, got True \(a boolean\)"),
        ('[select]\nmethods = "cci"\n', "select.methods must be a list of strings"),
        ('[data]\ninvalid = "drop"\n', "invalid must be one of"),
    ],
)
def test_run_config_errors_name_the_key(workspace, tmp_path, capsys, extra, message):
    import re

    cfg = tmp_path / "run.toml"
    base = f'output = "{tmp_path / "r"}"\n'
    body = f'[data]\npath = "{workspace / "corpus.fa"}"\n' if "[data]" not in extra else ""
    text = base + body + extra
    if "[data]" in extra:
        text = text.replace("[data]\n", f'[data]\npath = "{workspace / "corpus.fa"}"\n')
    cfg.write_text(text)
    code, _, err = _run(capsys, "run", cfg)
    assert code == 2
    assert re.search(message, err), err
    assert not (tmp_path / "r").exists()


def test_run_config_not_toml(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("output = \n")
    code, _, err = _run(capsys, "run", cfg)
    assert code == 2 and "is not valid TOML" in err


def test_small_demo(tmp_path, capsys):
    from biocoreset.run.demo import run_demo

    out = run_demo(tmp_path / "demo", n=60, pretrain_steps=3, progress=False)
    text = capsys.readouterr().out
    assert "cci: 6 sequences" in text and "topk: 6 sequences" in text
    for rel in (
        "corpus.fasta",
        "pretrain_loss.png",
        "finetune/model.pt",
        "scores.parquet",
        "select-cci/coreset.fasta",
        "select-topk/coreset_ids.txt",
        "summary.txt",
    ):
        assert (out / rel).exists(), rel
    with pytest.raises(Exception, match="holds an earlier demo; pass --force"):
        run_demo(tmp_path / "demo", n=60, pretrain_steps=1, progress=False)
    # --force replaces the demo's own outputs only: a user's file in the folder survives
    (out / "notes.txt").write_text("precious")
    run_demo(tmp_path / "demo", n=60, pretrain_steps=1, progress=False, force=True)
    assert (out / "notes.txt").read_text() == "precious"
    assert "pretrain: 1 MLM steps" in (out / "summary.txt").read_text()


def test_demo_force_never_deletes_a_user_folder_or_file(tmp_path, capsys):
    from biocoreset.errors import OutputExistsError
    from biocoreset.run.demo import run_demo

    user = tmp_path / "thesis"
    user.mkdir()
    (user / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not a biocoreset demo folder"):
        run_demo(user, n=60, pretrain_steps=1, progress=False, force=True)
    assert [p.name for p in user.iterdir()] == ["thesis.txt"]
    assert (user / "thesis.txt").read_text() == "precious"
    afile = tmp_path / "file.txt"
    afile.write_text("precious")
    code, _, err = _run(capsys, "demo", "-o", afile, "--force", "--no-progress")
    assert code != 0 and "is a file" in err and len(err.strip().splitlines()) == 1
    assert afile.read_text() == "precious"


@pytest.mark.slow
def test_demo_command(tmp_path, capsys):
    code, out, err = _run(capsys, "demo", "-o", tmp_path / "demo", "--no-progress")
    assert code == 0, err
    assert "pretrain: 300 MLM steps" in out and "done in" in out


# -- mask draws, stability, length control ---------------------------------------------------


def test_score_mask_draws_and_select_debias_round_trip(workspace, tmp_path, capsys):
    scores = tmp_path / "s.parquet"
    argv = ["score", workspace / "corpus.fa", "--model", workspace / "model", "-o", scores]
    argv += ["--subset", 8, "--batch-size", 8, "--mask-draws", 2, "--no-progress"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    # the command prints each BioCoresetWarning once, as a line on stderr
    assert "biocoreset score: warning:" in err and "not stable across mask draws" in err
    result = load_scores(scores)
    stab = result.metadata["stability"]
    assert result.metadata["mask_draws"] == 2 and result.metadata["mask_schedule"] == "independent"
    assert stab["draws"] == 2 and stab["projected"] < 0.9  # a random tiny model: mostly noise
    assert "length: Spearman(I(z), length) = " in out
    assert f"stability (K=2): split-half ρ {stab['split_half']:.3f}" in out
    assert "warning: projected reliability" in out
    # select with the length control: the fit in selection.json, two composition lines
    code, out, err = _run(
        capsys,
        "select",
        scores,
        "-o",
        tmp_path / "top",
        "--method",
        "topk",
        "--budget",
        8,
        "--debias",
        "length",
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "top" / "selection.json").read_text())
    assert summary["debias"]["debias"] == "length" and "spearman_length_after" in summary["debias"]
    assert len(summary["composition"]) == 2
    assert summary["composition"][0].startswith("length: median")
    assert summary["composition"][1].startswith("size: 8 of 40 (20.0%)")
    for line in summary["composition"]:
        assert line in out
    assert "debias=length: Spearman with length" in out
    code, out, err = _run(capsys, "select", scores, "-o", tmp_path / "plain", "--budget", 8)
    assert code == 0, err
    assert "debias" not in json.loads((tmp_path / "plain" / "selection.json").read_text())
    code, out, err = _run(
        capsys,
        "select",
        scores,
        "-o",
        tmp_path / "r",
        "--method",
        "random",
        "--budget",
        8,
        "--debias",
        "length",
    )
    assert code == 2 and "not 'random'" in err


def test_score_keep_draws_from_the_shell(workspace, tmp_path, capsys):
    scores = tmp_path / "s.parquet"
    argv = ["score", workspace / "corpus.fa", "--model", workspace / "model", "-o", scores]
    argv += ["--subset", 8, "--batch-size", 8, "--mask-draws", 3, "--keep-draws", "--no-progress"]
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    result = load_scores(scores)
    assert result.metadata["keep_draws"] is True
    assert result.draws is not None and result.draws.shape == (3, len(result))
    # float64 summation order only: the mean column is the mean of the draw columns
    assert abs(result.draws.mean(0) - result.scores).max() <= 1e-12 * abs(result.scores).max()


def test_run_file_takes_score_mask_draws(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('output = "r"\n[data]\npath = "c.fa"\n[score]\nmask_draws = 4\n')
    assert load_run_config(path).score.mask_draws == 4
    with pytest.raises(ConfigError, match="mask_draws"):
        run_config_from_dict({"output": "r", "data": {"path": "c.fa"}, "score": {"mask_draws": 0}})
    with pytest.raises(ConfigError, match=r"score\.mask_draws must be an integer"):
        run_config_from_dict(
            {"output": "r", "data": {"path": "c.fa"}, "score": {"mask_draws": "8"}}
        )


def test_score_mask_reduce_from_the_shell(workspace, tmp_path, capsys):
    scores = tmp_path / "s.parquet"
    argv = ["score", workspace / "corpus.fa", "--model", workspace / "model", "-o", scores]
    argv += ["--subset", 8, "--batch-size", 8, "--no-progress", "--mask-draws", 2]
    code, _, err = _run(capsys, *argv, "--mask-reduce", "mean-gradient")
    assert code == 0, err
    meta = load_scores(scores).metadata
    assert meta["mask_reduce"] == "mean-gradient" and meta["mask_draws"] == 2
    code, _, err = _run(capsys, *argv[:-2], "--mask-reduce", "mean-gradient", "--force")
    assert code != 0 and "mask_draws >= 2" in err and "mean-score" in err
    assert len(err.strip().splitlines()) == 1


def test_run_file_takes_score_mask_reduce(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'output = "r"\n[data]\npath = "c.fa"\n[score]\nmask_draws = 4\nmask_reduce = "mean-gradient"\n'
    )
    assert load_run_config(path).score.mask_reduce == "mean-gradient"
    with pytest.raises(ConfigError, match="mask_reduce"):
        run_config_from_dict(
            {"output": "r", "data": {"path": "c.fa"}, "score": {"mask_reduce": "mean-gradient"}}
        )
