"""Every ``biocoreset ...`` command shown in README.md and docs/ runs, at toy size.

The commands are read from the pages' shell code blocks (continuation lines joined, comments
dropped) and run in page order, each page in its own copy of a workspace holding toy stand-ins for
the files the pages name (corpus.fa, ./rnafm-hf, RNA-FM_pretrained.pth...). A few placeholders are
substituted (:data:`SUBSTITUTIONS`); a command whose output already exists from an earlier command
of its page gets ``--force``. The few commands that cannot run here are listed in ``SKIPS``.
"""

from __future__ import annotations

import gzip
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RUN_FOR_REAL = {"antibodies.md"}
"""Pages whose commands run as written, with their real models and binaries, in a test of their own
(tests/test_howto_antibodies.py), not at toy size here."""
PAGES = [
    p
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    if p.name not in RUN_FOR_REAL
]
SHELL = {"bash", "sh", "shell", "console", ""}

SUBSTITUTIONS = {
    "/models/esm2_t12_35M_UR50D": "esm2_t12_35M_UR50D",  # a tiny protein ESM in the workspace
    '"name": "esmc_300m"': '"name": "tiny"',  # the ESM-C how-to at toy size
    "--budget 200000": "--budget 30",  # the toy corpus has 300 sequences
    "budget = 200000": "budget = 30",
    "$b": "0.1",  # the budget loop's variable
    '"size": "small"': '"size": "tiny"',
    "--max-steps 2000": "--max-steps 4",  # the README's pretraining, at toy size
    "--max-steps 200 ": "--max-steps 4 ",  # the FASTA-to-coreset page's
    "--subset 1024": "--subset 100",
}

SKIPS = {
    "...": "an elided command (a template, not a runnable line)",
    "quantile-strata": "needs the example plugin package (examples/) installed",
    "--model antiberty": "loads AntiBERTy's 100 MB weights (tests/cli/test_antiberty_cli.py)",
    "biocoreset cluster": "needs the MMseqs2 binary (tests/cli/test_cluster.py runs it)",
    "--method cluster": "needs an MMseqs2 cluster file (tests/cli/test_cluster.py runs it)",
    "--method mmseqs": "needs the MMseqs2 binary (tests/bench/test_dedup_mmseqs.py runs it)",
}
"""Commands containing these texts are skipped, for the reason given. Also skipped: a command equal
to the one before it (the pages repeat a command to show resuming a killed run; ours finished)."""

ESM2_VOCAB = [
    "<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>",
]  # fmt: skip


def shell_commands(page: Path) -> list[str]:
    """The ``biocoreset`` commands of a page's shell code blocks, in order."""
    out: list[str] = []
    fence: str | None = None
    pending: str | None = None
    for raw in page.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        m = re.match(r"^(```+|~~~+)(\S*)", line)
        if m:
            fence = None if fence is not None else m.group(2)
            continue
        if fence is None or fence not in SHELL:
            continue
        line = line.removeprefix("$ ").strip()
        if pending is None and not line.startswith("biocoreset "):
            continue
        text = line[:-1].rstrip() if line.endswith("\\") else line
        pending = text if pending is None else f"{pending} {text}"
        if not line.endswith("\\"):
            out.append(pending)
            pending = None
    return out


def test_extraction_joins_continuations_and_keeps_order(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "biocoreset prose\n```bash\nbiocoreset score a.fa \\\n    -o s.parquet   # c\n"
        "echo x\n$ biocoreset plugins\n```\n```python\nbiocoreset = 1\n```\n",
        encoding="utf-8",
    )
    assert shell_commands(page) == [
        "biocoreset score a.fa -o s.parquet   # c",
        "biocoreset plugins",
    ]


def _fasta(records, path: Path) -> Path:
    text = "".join(f">{rid} toy record\n{seq}\n" for rid, seq in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _tiny_protein_esm(folder: Path) -> None:
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    (folder).mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n", encoding="utf-8")
    tok = EsmTokenizer(vocab_file=str(folder / "vocab.txt"))
    config = EsmConfig(
        vocab_size=len(ESM2_VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=130, pad_token_id=1, mask_token_id=32,
        position_embedding_type="rotary", token_dropout=False,
    )  # fmt: skip
    torch.manual_seed(0)
    EsmForMaskedLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def _tables(records, ws: Path) -> None:
    """The input-format examples' files (docs/pipeline.md): an id-less CSV, an AIRR TSV, an OAS
    data unit (metadata line, no id column, gzip) and a Parquet file, all of RNA for the toy model."""
    import csv
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    (ws / "sequences.csv").write_text(
        "sequence,label\n" + "".join(f"{s},x\n" for _, s in records), encoding="utf-8"
    )
    (ws / "rearrangements.tsv").write_text(
        "sequence_id\tv_call\tsequence_aa\n"
        + "".join(f"{r}\tIGHV1-2*02\t{s}\n" for r, s in records),
        encoding="utf-8",
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([json.dumps({"Run": "SRR11528761", "Species": "human", "Chain": "Heavy"})])
    w.writerow(["v_call", "sequence_alignment_aa", "cdr3_aa", "Redundancy", "ANARCI_status"])
    w.writerows(["IGHV1-2*02", s, s[:5], 1, "|"] for _, s in records)
    with gzip.open(ws / "SRR11528761_1_Heavy_IGHG.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    ids, seqs = zip(*records, strict=True)
    table = pa.table({"name": pa.array(ids, pa.large_string()), "seq": list(seqs)})
    pq.write_table(table, ws / "corpus.parquet", row_group_size=16)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Toy stand-ins for every file the pages name."""
    from biocoreset import score
    from biocoreset.adapters.hf import HFAdapter
    from biocoreset.adapters.rnafm_checkpoint import save_rnafm_checkpoint
    from biocoreset.adapters.rnafm_model import build_rnafm, rnafm_tokenizer
    from biocoreset.modelio import load_model
    from biocoreset.testing import random_rna, tiny_esm
    from biocoreset.train.finetune import finetune, save_finetuned
    from biocoreset.train.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)
    ws = tmp_path_factory.mktemp("docs-workspace")
    rna = random_rna(300, seed=11, min_len=20, max_len=60)
    for name in ("corpus.fasta", "corpus.fa", "corpus.fa.gz", "ncrna.fasta.gz", "rfam.fa.gz",
                 "rfam14.2_seed_sequences.fasta.gz"):  # fmt: skip
        _fasta(rna, ws / name)
    rng = np.random.default_rng(0)
    proteins = [
        (f"p{i}", "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(rng.integers(10, 40)))))
        for i in range(120)
    ]
    _fasta(proteins, ws / "proteins.fasta")
    rfam_like = [(f"RF0000{i % 4}|X{i}.1/1-{len(seq)}", seq) for i, (_, seq) in enumerate(rna)]
    for name in ("rfam_sample.fa", "my_rna.fa"):  # the FASTA-to-coreset page's Rfam samples
        _fasta(rfam_like, ws / name)
    _fasta(rna[:10], ws / "nRC_test.fasta")
    (ws / "bpRNA_test.jsonl").write_text(
        "".join(f'{{"id": "{rid}", "sequence": "{seq}"}}\n' for rid, seq in rna[10:15]),
        encoding="utf-8",
    )
    _tables(rna[:40], ws)
    (ws / "coreset_cci.txt").write_text("".join(f"{rid}\n" for rid, _ in rna[20:52]))
    labels = "".join(f"{seq},c{i % 3}\n" for i, (_, seq) in enumerate(rna[100:160]))
    (ws / "rna_type.csv").write_text("sequence,label\n" + labels, encoding="utf-8")
    (ws / "bench.toml").write_text(
        'seeds = [0]\n\n[[checkpoint]]\nname = "CCI"\npath = "runs/cci"\ndata_size = "0.2M"\n\n'
        '[[task]]\nname = "rna-type"\ntrain = "rna_type.csv"\nformat = "labelled"\nepochs = 1\n'
        "finetune = false\n",
        encoding="utf-8",
    )
    model, tok = tiny_esm(dtype=torch.float32, max_positions=130)
    for folder in ("my-hf-model", "path/to/architecture"):
        model.save_pretrained(ws / folder)
        tok.save_pretrained(ws / folder)
    torch.manual_seed(0)
    rnafm = build_rnafm("tiny")
    for folder in ("rnafm-hf", "models/rnafm-hf"):  # a converted RNA-FM, as users have them
        rnafm.save_pretrained(ws / folder)
        rnafm_tokenizer().save_pretrained(ws / folder)
    save_rnafm_checkpoint(rnafm, ws / "RNA-FM_pretrained.pth")
    try:
        from biocoreset.adapters.esmc_model import build_esmc

        torch.save(build_esmc("tiny").state_dict(), ws / "esmc_300m_2024_12_v0.pth")
    except ImportError:
        pass
    _tiny_protein_esm(ws / "esm2_t12_35M_UR50D")
    adapter = load_model(ws / "rnafm-hf", device="cpu")
    result = finetune(adapter, rna, subset=32, batch_size=16, diagnostic_samples=0, progress=False)
    save_finetuned(ws / "ft", adapter, result)
    score(HFAdapter(model, tok), rna, subset=32, progress=False).save(ws / "scores.parquet")
    random = HFAdapter(*tiny_esm(dtype=torch.float32, max_positions=130))
    cfg = PretrainConfig(max_steps=2, batch_size=8, warmup_steps=1, progress=False)
    pretrain(random, rna[:16], ws / "runs" / "random", config=cfg)
    return ws


def _force_if_output_exists(argv: list[str], cwd: Path) -> list[str]:
    for flag in ("-o", "--output"):
        if flag in argv and "--force" not in argv:
            target = cwd / argv[argv.index(flag) + 1]
            if target.is_file() or (target.is_dir() and any(target.iterdir())):
                return [*argv, "--force"]
    return argv


def _run_toml(page: Path, cwd: Path) -> None:
    """The page's run file: its TOML block with a [data] table."""
    blocks = re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    (text,) = [b for b in blocks if "[data]" in b]
    for old, new in SUBSTITUTIONS.items():
        text = text.replace(old, new)
    (cwd / "run.toml").write_text(text, encoding="utf-8")


PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES if shell_commands(p)]


@pytest.mark.slow
@pytest.mark.parametrize("page_name", PAGE_IDS)
# toy models are never stable across mask draws (docs/trust.md shows --mask-draws)
@pytest.mark.filterwarnings("ignore:the scores are not stable across mask draws")
def test_page_commands_run(page_name, workspace, tmp_path, monkeypatch, capsys):
    from biocoreset.cli import main

    page = ROOT / page_name
    commands = shell_commands(page)
    cwd = tmp_path / "ws"
    shutil.copytree(workspace, cwd)
    if any(c.startswith("biocoreset finetune") for c in commands):
        shutil.rmtree(cwd / "ft")  # the page makes its own
    monkeypatch.chdir(cwd)
    ran, previous = 0, None
    for command in commands:
        if command == previous or any(
            key in command for key in SKIPS if key != "<same as the line before>"
        ):
            previous = command
            continue
        previous = command
        if "esmc" in command:
            pytest.importorskip("esm.models.esmc")
        text = command
        for old, new in SUBSTITUTIONS.items():
            text = text.replace(old, new)
        argv = shlex.split(text, comments=True)[1:]
        if argv[:2] == ["run", "run.toml"]:
            _run_toml(page, cwd)
        argv = _force_if_output_exists(argv, cwd)
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"{page_name}: `{command}` failed:\n{captured.err[-2000:]}"
        ran += 1
    assert ran or all(any(k in c for k in SKIPS) for c in commands)


@pytest.mark.slow
def test_readme_python_example_runs(workspace, tmp_path):
    """The README's Python example runs as written where its shell example left ``ft/`` (here the
    workspace's toy fine-tune) and ``corpus.fasta``, with the default D_sub."""
    import os
    import subprocess
    import sys

    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    cwd = tmp_path / "ws"
    shutil.copytree(workspace, cwd)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.strip().startswith("[")
    assert (cwd / "python-scores.parquet").is_file()
