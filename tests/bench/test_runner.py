"""Result tables: aggregation over seeds, paper-style Markdown, CSV, run_bench and config files."""

from __future__ import annotations

import argparse
import csv
import io
import json

import numpy as np
import pytest
import torch

from biocoreset.adapters.hf import HFAdapter
from biocoreset.bench import Backbone, BenchTable, run_bench
from biocoreset.bench.config import load_bench_config
from biocoreset.bench.data import Example
from biocoreset.bench.protocol import MetricSpec
from biocoreset.bench.runner import BenchRow
from biocoreset.bench.tasks import CRISPROnTargetTask, RNATypeTask
from biocoreset.cli.bench import add_bench_parser
from biocoreset.errors import ConfigError, OutputExistsError
from biocoreset.testing import tiny_esm

SPECS = {"rna-type": RNATypeTask.metrics, "crispr-on-target": CRISPROnTargetTask.metrics}


def _rows() -> list[BenchRow]:
    values = {
        ("Random", "rna-type", "acc"): [0.80, 0.82, 0.84],
        ("CCI", "rna-type", "acc"): [0.90, 0.92, 0.94],
        ("Top I", "rna-type", "acc"): [0.85, 0.86, 0.87],
        ("Random", "crispr-on-target", "mse"): [0.020, 0.022, 0.024],
        ("CCI", "crispr-on-target", "mse"): [0.010, 0.012, 0.014],
        ("Top I", "crispr-on-target", "mse"): [0.015, 0.016, 0.017],
    }
    rows = []
    for (ck, task, metric), vals in values.items():
        title = "TypeCls" if task == "rna-type" else "CRI-On"
        for seed, v in enumerate(vals):
            rows.append(
                BenchRow(
                    checkpoint=ck,
                    data_size="0.2M",
                    task=task,
                    title=title,
                    group="rna-function",
                    metric=metric,
                    seed=seed,
                    value=v,
                )
            )
    return rows


def test_summary_is_mean_and_sample_sd():
    table = BenchTable(_rows(), SPECS)
    s = {(r["checkpoint"], r["metric"]): r for r in table.summary()}
    assert s[("CCI", "acc")]["mean"] == pytest.approx(0.92)
    assert s[("CCI", "acc")]["sd"] == pytest.approx(np.std([0.90, 0.92, 0.94], ddof=1))
    assert s[("CCI", "acc")]["n"] == 3 and s[("CCI", "acc")]["seeds"] == "0 1 2"


def test_markdown_is_laid_out_like_the_paper():
    md = BenchTable(_rows(), SPECS).to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("### RNA function and engineering prediction")
    assert lines[2] == "| Methods | Data Size | TypeCls ACC(%) | CRI-On MSE ↓ |"
    rows = {
        ln.split(" | ")[0].strip("| "): ln
        for ln in lines
        if ln.startswith("| ") and "Methods" not in ln
    }
    assert (
        rows["CCI"] == "| CCI | 0.2M | **92.00 ± 2.00** | **0.0120 ± 0.0020** |"
    )  # best: high acc, low MSE
    assert rows["Top I"] == "| Top I | 0.2M | <u>86.00 ± 1.00</u> | <u>0.0160 ± 0.0010</u> |"
    assert rows["Random"] == "| Random | 0.2M | 82.00 ± 2.00 | 0.0220 ± 0.0020 |"
    assert "Mean ± sample sd over seeds 0, 1, 2" in md


def test_csv_outputs_and_overwrite_protection(tmp_path):
    table = BenchTable(_rows(), SPECS)
    raw = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert len(raw) == 18 and raw[0]["checkpoint"] == "Random" and float(raw[0]["value"]) == 0.80
    summary = list(csv.DictReader(io.StringIO(table.summary_csv())))
    assert len(summary) == 6 and {r["metric"] for r in summary} == {"acc", "mse"}
    paths = table.write(tmp_path)
    assert paths["markdown"].read_text().startswith("### RNA function")
    with pytest.raises(OutputExistsError):
        table.write(tmp_path)
    table.write(tmp_path, force=True)


def _backbone(name: str, seed: int) -> Backbone:
    def load():
        model, tok = tiny_esm(dtype=torch.float32, seed=seed)
        return HFAdapter(model, tok)

    return Backbone(name=name, load=load, data_size="0M")


def _examples(n: int = 24) -> list[Example]:
    rng = np.random.default_rng(1)
    return [
        Example(id=f"e{i}", sequence="".join(rng.choice(list("ACGU"), 12)), label=("x", "y")[i % 2])
        for i in range(n)
    ]


def test_run_bench_rows_seeds_and_duplicate_tasks(tmp_path):
    ex = _examples()
    tasks = [
        RNATypeTask(train=ex, epochs=1, finetune=False),
        RNATypeTask(train=ex[:16], epochs=1, finetune=False),
    ]
    table = run_bench(
        tasks,
        [_backbone("A", 0), _backbone("B", 1)],
        seeds=(0, 1),
        output_dir=tmp_path,
        progress=False,
    )
    assert len(table) == 2 * 2 * 2 * 2  # checkpoints x tasks x seeds x metrics
    assert {r.task for r in table.rows} == {"rna-type#1", "rna-type#2"}
    assert (tmp_path / "results.md").exists() and (tmp_path / "summary.csv").exists()
    with pytest.raises(OutputExistsError):
        run_bench(tasks, [_backbone("A", 0)], seeds=(0,), output_dir=tmp_path)
    with pytest.raises(ConfigError, match="checkpoint names must be unique"):
        run_bench(tasks, [_backbone("A", 0), _backbone("A", 1)])
    with pytest.raises(ConfigError, match="is not a BenchmarkTask"):
        run_bench([object()], [_backbone("A", 0)])

    class Broken(RNATypeTask):
        metrics = (MetricSpec("acc", "ACC(%)"), MetricSpec("auc", "AUC(%)"))

    with pytest.raises(ConfigError, match=r"returned no value for metric\(s\) \['auc'\]"):
        run_bench([Broken(train=ex, epochs=1, finetune=False)], [_backbone("A", 0)], seeds=(0,))


def test_config_file_and_cli(tmp_path):
    ex = _examples()
    (tmp_path / "data.csv").write_text(
        "id,sequence,label\n" + "".join(f"{e.id},{e.sequence},{e.label}\n" for e in ex),
        encoding="utf-8",
    )
    model, tok = tiny_esm(dtype=torch.float32)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        'seeds = [0, 1]\n\n[[checkpoint]]\nname = "tiny"\npath = "model"\ndata_size = "0M"\n\n'
        '[[checkpoint]]\nname = "Raw"\npath = "model"\ninit = "random"\n\n'
        '[[task]]\nname = "rna-type"\ntrain = "data.csv"\nformat = "labelled"\nepochs = 1\nfinetune = false\n',
        encoding="utf-8",
    )
    parsed = load_bench_config(cfg)
    assert parsed.seeds == (0, 1) and parsed.tasks[0]["train"] == str(tmp_path / "data.csv")
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["bench", str(cfg), "-o", str(tmp_path / "out"), "--data-size", "Raw=0M", "--no-progress"]
    )
    assert args.func(args) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| tiny | 0M |" in md and "| Raw | 0M |" in md
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = [0]\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'seed'.*Did you mean 'seeds'\? Valid keys: batch_size, checkpoint, device",
    ):
        load_bench_config(bad)
    bad.write_text('[[checkpoint]]\nname = "x"\npath = "m"\nweights = "w"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"unknown key 'checkpoint\[1\]\.weights'.*Valid keys.*adapter_options"
    ):
        load_bench_config(bad)
    bad.write_text("seeds = []\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"seeds must be a non-empty list of integers >= 0, got \[\]"
    ):
        load_bench_config(bad)
    bad.write_text('batch_size = "8"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"batch_size must be an integer, got '8'"):
        load_bench_config(bad)
    json_cfg = tmp_path / "bench.json"
    json_cfg.write_text(
        json.dumps({"task": [{"name": "rna-type", "train": "data.csv"}]}), encoding="utf-8"
    )
    assert load_bench_config(json_cfg).seeds == (0, 1, 2)
