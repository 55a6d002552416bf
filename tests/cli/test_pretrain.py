"""The ``biocoreset pretrain`` command through its parser."""

from __future__ import annotations

import argparse
import json

import torch

from biocoreset.cli.pretrain import add_pretrain_parser
from biocoreset.testing import random_rna, tiny_esm

CORPUS = random_rna(14, seed=3, min_len=8, max_len=24)


def test_cli_parser_runs_a_tiny_pretraining(tmp_path):
    model, tok = tiny_esm(dtype=torch.float32)
    folder = tmp_path / "arch"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    fasta = tmp_path / "corpus.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in CORPUS), encoding="utf-8")
    ids = tmp_path / "ids.txt"
    ids.write_text("seq0\nseq3\nseq4\nseq8\nseq11\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_pretrain_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "pretrain",
            str(fasta),
            "-o",
            str(tmp_path / "run"),
            "--coreset",
            str(ids),
            "--model",
            str(folder),
            "--max-steps",
            "3",
            "--warmup-steps",
            "1",
            "--batch-size",
            "2",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    meta = json.loads((tmp_path / "run" / "pretrain.json").read_text())
    assert meta["steps"] == 3 and meta["num_sequences"] == 5 and meta["config"]["batch_size"] == 2
