"""The ``biocoreset dedup`` command: filtered FASTA (headers kept) and the removed ids."""

from __future__ import annotations

import argparse

from biocoreset.cli.dedup import add_dedup_parser


def test_cli(tmp_path):
    fasta = tmp_path / "corpus.fa"
    fasta.write_text(">a\nAAAACCCC\n>b label=kept\nGGGGUUUU\n", encoding="utf-8")
    (tmp_path / "t.csv").write_text("sequence\naaaacccc\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_dedup_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "dedup",
            str(fasta),
            "-t",
            str(tmp_path / "t.csv"),
            "-o",
            str(tmp_path / "out.fa"),
            "--removed-ids",
            str(tmp_path / "removed.txt"),
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "out.fa").read_text() == ">b label=kept\nGGGGUUUU\n"
    assert (tmp_path / "removed.txt").read_text() == "a\n"
