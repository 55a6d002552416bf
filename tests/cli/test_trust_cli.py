"""`score --mask-draws`, `select --debias length`, the stability and composition lines, and
`score.mask_draws` in a run file."""

from __future__ import annotations

import json

import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.errors import BioCoresetWarning, ConfigError
from biocoreset.runfile import load_run_config, run_config_from_dict
from biocoreset.store.result import load_scores
from biocoreset.testing import tiny_esm


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(40, seed=1), root / "corpus.fa")
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_mask_draws_and_select_debias_round_trip(workspace, tmp_path, capsys):
    scores = tmp_path / "s.parquet"
    argv = ["score", workspace / "corpus.fa", "--model", workspace / "model", "-o", scores]
    argv += ["--subset", 8, "--batch-size", 8, "--mask-draws", 2, "--no-progress"]
    with pytest.warns(BioCoresetWarning, match="not stable across mask draws"):
        code, out, err = _run(capsys, *argv)
    assert code == 0, err
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
