"""A tiny end-to-end run through the command-line handlers: dedup -> pretrain -> bench."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from biocoreset.cli.bench import add_bench_parser
from biocoreset.cli.dedup import add_dedup_parser
from biocoreset.cli.pretrain import add_pretrain_parser
from biocoreset.testing import random_rna, tiny_esm


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="biocoreset")
    sub = parser.add_subparsers(dest="command")
    add_pretrain_parser(sub)
    add_bench_parser(sub)
    add_dedup_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def _model_folder(tmp_path: Path) -> Path:
    model, tok = tiny_esm(dtype=torch.float32, hidden=16, max_positions=130)
    folder = tmp_path / "architecture"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _write_fasta(path: Path, records) -> Path:
    path.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records), encoding="utf-8")
    return path


def _pretrain_two(
    tmp_path: Path, corpus: Path, ids: list[str], options: str = "{}"
) -> dict[str, Path]:
    arch = _model_folder(tmp_path)
    runs = {}
    for name, chosen in (("First", ids[: len(ids) // 2]), ("Second", ids[len(ids) // 2 :])):
        id_file = tmp_path / f"{name}.txt"
        id_file.write_text("".join(f"{i}\n" for i in chosen), encoding="utf-8")
        out = tmp_path / f"run-{name}"
        assert (
            _cli(
                [
                    "pretrain",
                    str(corpus),
                    "-o",
                    str(out),
                    "--coreset",
                    str(id_file),
                    "--model",
                    str(arch),
                    "--adapter-options",
                    options,
                    "--max-steps",
                    "6",
                    "--warmup-steps",
                    "2",
                    "--batch-size",
                    "8",
                    "--lr",
                    "1e-3",
                    "--checkpoint-every",
                    "3",
                    "--no-progress",
                ]
            )
            == 0
        )
        runs[name] = out
    return runs


def _check_results(out: Path, tasks: set[str], rows: set[str]) -> None:
    md = (out / "results.md").read_text()
    for r in rows:
        assert f"| {r} |" in md
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    assert {r["task"] for r in raw} == tasks
    assert {r["checkpoint"] for r in raw} == rows
    assert {r["seed"] for r in raw} == {"0", "1", "2"}
    assert all(np.isfinite(float(r["value"])) for r in raw)


def test_generated_data_end_to_end(tmp_path):
    corpus = _write_fasta(tmp_path / "corpus.fa", random_rna(48, seed=5, min_len=10, max_len=40))
    rng = np.random.default_rng(0)
    rows = ["id,sequence,label"]
    for i in range(40):
        p = [0.55, 0.15, 0.15, 0.15] if i % 2 else [0.15, 0.15, 0.55, 0.15]
        rows.append(f"t{i},{''.join(rng.choice(list('ACGU'), 20, p=p))},{'A' if i % 2 else 'G'}")
    (tmp_path / "type.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # The test split's sequences are planted in the corpus: dedup must take them out.
    leaked = _write_fasta(
        tmp_path / "leaky.fa",
        [*random_rna(48, seed=5, min_len=10, max_len=40), ("leak", rows[1].split(",")[1])],
    )
    assert (
        _cli(
            [
                "dedup",
                str(leaked),
                "-t",
                str(tmp_path / "type.csv"),
                "-o",
                str(tmp_path / "clean.fa"),
            ]
        )
        == 0
    )
    assert ">leak" not in (tmp_path / "clean.fa").read_text()
    runs = _pretrain_two(tmp_path, corpus, [f"seq{i}" for i in range(48)])
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        "".join(
            f'[[checkpoint]]\nname = "{n}"\npath = "{p.name}"\ndata_size = "24"\n\n'
            for n, p in runs.items()
        )
        + '[[task]]\nname = "rna-type"\ntrain = "type.csv"\nformat = "labelled"\nepochs = 2\n\n'
        '[[task]]\nname = "crispr-on-target"\ntrain = "type.csv"\nformat = "labelled"\n'
        'data_options = {label_type = "float", label_field = "label_num"}\nepochs = 1\n',
        encoding="utf-8",
    )
    (tmp_path / "type.csv").write_text(
        "\n".join(
            [rows[0] + ",label_num"] + [f"{r},{r.split(',')[1].count('G') / 20}" for r in rows[1:]]
        )
        + "\n",
        encoding="utf-8",
    )
    assert _cli(["bench", str(cfg), "-o", str(tmp_path / "results"), "--no-progress"]) == 0
    _check_results(tmp_path / "results", {"rna-type", "crispr-on-target"}, {"First", "Second"})


def test_real_data_end_to_end(tmp_path, shared_data):
    rna = shared_data / "rna"
    nrc_test = rna / "type_nrc/ncrna-deep_dataset_nRC_test.fasta"
    clean = tmp_path / "rfam_clean.fa"
    assert (
        _cli(
            [
                "dedup",
                str(rna / "corpus/rfam14.2_seed_sequences.fasta.gz"),
                "-t",
                str(nrc_test),
                "-o",
                str(clean),
            ]
        )
        == 0
    )
    ids = [line[1:].split()[0] for line in clean.read_text().splitlines() if line.startswith(">")]
    chosen = [ids[i] for i in np.random.default_rng(0).choice(len(ids), 96, replace=False)]
    runs = _pretrain_two(tmp_path, clean, chosen, options=json.dumps({"unknown": "unk"}))
    meta = json.loads((runs["First"] / "pretrain.json").read_text())
    assert meta["num_sequences"] == 48 and meta["steps"] == 6
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        "".join(
            f'[[checkpoint]]\nname = "{n}"\npath = "{p}"\ndata_size = "48"\n\n'
            for n, p in runs.items()
        )
        + f'[[checkpoint]]\nname = "Raw"\npath = "{runs["First"]}"\ndata_size = "0"\ninit = "random"\n\n'
        + f'[[task]]\nname = "rna-type"\ntrain = "{rna / "type_nrc/ncrna-deep_dataset_nRC_train.fasta"}"\n'
        f'test = "{nrc_test}"\nmax_train = 120\nmax_test = 60\nepochs = 1\n\n'
        f'[[task]]\nname = "rna-modification"\ntrain = "{rna / "modification_m6a/Human_Liver_train.csv.gz"}"\n'
        f'test = "{rna / "modification_m6a/Human_Liver_test.csv.gz"}"\nmax_train = 120\nmax_test = 60\nepochs = 1\n\n'
        f'[[task]]\nname = "rna-secondary-structure"\ntrain = "{rna / "secondary_structure/RNA-SSP-Archive2_train.jsonl"}"\n'
        f'test = "{rna / "secondary_structure/RNA-SSP-Archive2_test.jsonl"}"\nmax_train = 24\nmax_test = 12\n'
        "epochs = 1\nlr = 1e-3\n",
        encoding="utf-8",
    )
    assert _cli(["bench", str(cfg), "-o", str(tmp_path / "results"), "--no-progress"]) == 0
    _check_results(
        tmp_path / "results",
        {"rna-type", "rna-modification", "rna-secondary-structure"},
        {"First", "Second", "Raw"},
    )
