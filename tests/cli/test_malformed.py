"""Issue 31 item 3: malformed score files, API inputs and a full disk give one clear line, never a
traceback or a silently wrong result (see docs/reliability.md, "Malformed inputs, fourth round").

The CLI cases call ``main`` in-process: an uncaught exception fails the test outright; each asserts
exit status 2, one line naming the thing at fault, and that nothing was written.
"""

from __future__ import annotations

import errno
import json
import math
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from biocoreset.cli import main
from biocoreset.data.synthetic import synthetic_rna_corpus, write_fasta
from biocoreset.data.validation import sequence_hash
from biocoreset.testing import tiny_esm


def _fails(capsys, *argv, code=2):
    capsys.readouterr()
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1, err
    return lines[0]


def _score_file(path, ids, *, scores=None, lengths=None, meta=b'{"negated": false}', extra=None):
    n = len(ids)
    columns = {
        "id": pa.array(ids, pa.string()),
        "score": pa.array(scores if scores is not None else [float(i + 1) for i in range(n)]),
        "loss": pa.array([1.0] * n),
        "length": pa.array(lengths if lengths is not None else [10 + i for i in range(n)]),
        **(extra or {}),
    }
    table = pa.table(columns)
    if meta is not None:
        table = table.replace_schema_metadata({b"biocoreset": meta})
    pq.write_table(table, path)
    return path


IDS = [f"s{i}" for i in range(8)]


# -- diagnose: malformed metadata ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b'["a", "list"]', "not a JSON object (got a list)"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["non-json", "json-list", "non-utf8"],
)
@pytest.mark.parametrize("command", ["diagnose", "select"])
def test_malformed_metadata_is_one_line(tmp_path, capsys, meta, words, command):
    f = _score_file(tmp_path / "s.parquet", IDS, meta=meta)
    budget = ["--budget", 2] if command == "select" else []
    line = _fails(capsys, command, f, "-o", tmp_path / "out", *budget)
    assert "s.parquet" in line and words in line
    assert not (tmp_path / "out").exists()


def test_diagnose_refuses_duplicate_ids_as_select_does(tmp_path, capsys):
    f = _score_file(tmp_path / "s.parquet", ["a", "b", "a", "c"])
    lines = [
        _fails(capsys, "diagnose", f, "-o", tmp_path / "d"),
        _fails(capsys, "select", f, "-o", tmp_path / "o", "--budget", 1),
    ]
    for line in lines:
        assert "'a' twice (rows 0 and 2)" in line
    assert lines[0].split("error: ")[1] == lines[1].split("error: ")[1]  # one shared check
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("scores", "first"),
    [
        ([math.nan] * 8, "8 NaN or infinite score(s) of 8 (first: row 0, id 's0', nan)"),
        ([1.0, 2.0, math.inf, 3.0, 4.0, 5.0, 6.0, 7.0], "1 NaN or infinite score(s) of 8 (first: row 2, id 's2', inf)"),
    ],
    ids=["all-nan", "inf"],
)  # fmt: skip
def test_diagnose_refuses_nan_or_infinite_scores(tmp_path, capsys, scores, first):
    f = _score_file(tmp_path / "s.parquet", IDS, scores=scores)
    line = _fails(capsys, "diagnose", f, "-o", tmp_path / "d")
    assert first in line and "Spearman" not in line
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", ["diagnose", "select"])
def test_nan_length_is_refused_naming_the_row(tmp_path, capsys, command):
    lengths = [10.0, 11.0, 12.0, math.nan, 14.0, 15.0, 16.0, 17.0]
    f = _score_file(tmp_path / "s.parquet", IDS, lengths=lengths)
    budget = ["--budget", 2] if command == "select" else []
    line = _fails(capsys, command, f, "-o", tmp_path / "out", *budget)
    assert "length nan at row 3 (id 's3')" in line
    assert not (tmp_path / "out").exists()


# -- select: metadata of the wrong types -----------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"reader": "oops"}, "'reader' = 'oops' (str); it must be an object"),
        ({"validation": {"skipped_invalid": "x"}}, "'validation.skipped_invalid' = 'x' (str)"),
        ({"negated": "yes"}, "'negated' = 'yes' (str); it must be true or false"),
        ({"negated": "no"}, "'negated' = 'no' (str); it must be true or false"),
        ({"reader": {"parts": ["a.fa"]}}, "'reader.parts[0]' = 'a.fa' (str)"),
        ({"reader": {"path": 3}}, "'reader.path' = 3 (int)"),
    ],
    ids=["reader", "skipped_invalid", "negated-yes", "negated-no", "parts", "path"],
)
@pytest.mark.parametrize("command", ["select", "diagnose"])
def test_metadata_of_the_wrong_type_names_the_field(tmp_path, capsys, meta, field, command):
    f = _score_file(tmp_path / "s.parquet", IDS, meta=json.dumps(meta).encode())
    budget = ["--budget", 2] if command == "select" else []
    line = _fails(capsys, command, f, "-o", tmp_path / "out", *budget)
    assert "s.parquet" in line and field in line
    assert not (tmp_path / "out").exists()


def test_null_id_is_named_not_blamed_on_the_corpus(tmp_path, capsys):
    seqs = {"a": "ACGUAC", "b": "GGCAUU", "c": "UUAGCA"}
    corpus = tmp_path / "c.fa"
    corpus.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    hashes = pa.array([sequence_hash(v) for v in seqs.values()], pa.int64())
    meta = json.dumps({"negated": False, "reader": {"path": str(corpus)}}).encode()
    f = _score_file(
        tmp_path / "s.parquet", ["a", None, "c"], meta=meta, extra={"sequence_hash": hashes}
    )
    line = _fails(capsys, "select", f, "-o", tmp_path / "o", "--budget", 1, "--method", "topk")
    assert "null id at row 1" in line and "corpus changed" not in line
    assert not (tmp_path / "o").exists()
    line = _fails(capsys, "diagnose", f, "-o", tmp_path / "d")
    assert "null id at row 1" in line


# -- a full disk while a model, a checkpoint or a curvature is saved -------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_fasta(synthetic_rna_corpus(12, seed=1), root / "corpus.fa")
    return root


def _finetune(ws, out):
    return ["finetune", ws / "corpus.fa", "--model", ws / "model", "--max-steps", 1, "--subset", 4,
            "--diagnostic-samples", 2, "--no-progress", "-o", out]  # fmt: skip


def _no_space(*args, **kwargs):
    raise RuntimeError(
        "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
        "data/0: file write failed: No space left on device"
    )


def test_full_disk_during_finetune_save_is_one_line(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "save", _no_space)
    out = tmp_path / "ft"
    line = _fails(capsys, *_finetune(ws, out))
    assert "No space left on device" in line and "model.pt" in line and "free space" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no stage, no temporary


def test_full_disk_during_curvature_save_is_one_line(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "save", _no_space)
    out = tmp_path / "s.parquet"
    argv = ["score", ws / "corpus.fa", "--model", ws / "model", "-o", out, "--subset", 4,
            "--batch-size", 6, "--no-progress"]  # fmt: skip
    line = _fails(capsys, *argv)
    assert "No space left on device" in line and "curvature" in line
    assert not out.exists()
    left = [p.name for p in (tmp_path / "s.parquet.parts").iterdir()]
    assert not [n for n in left if n.endswith(".tmp") or n.startswith("curvature")], left


def test_write_errors_turn_runtime_errors_into_os_errors(tmp_path, monkeypatch):
    from biocoreset.store.disk import write_errors
    from biocoreset.train.checkpoints import save_checkpoint

    with pytest.raises(ValueError), write_errors(tmp_path / "x"):
        raise ValueError("not a write failure")  # passes through
    monkeypatch.setattr(torch, "save", _no_space)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path / "ckpt.pt", {"w": torch.zeros(3)})
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith("ckpt.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the temporary is gone


# -- a protein model given nucleotides, and the reverse (a warning) --------------------------------

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"
DNA = [("d1", "ACGTTGCAAGT"), ("d2", "GGCATTACGAT"), ("d3", "ttgacgatcga")]
PEPTIDES = [("p1", "EVQLVESGGGLVQ"), ("p2", "DIQMTQSPSSLSA"), ("p3", "QVQLQESGPGLVK")]


def _index(records, validator):
    from biocoreset.data.validation import scan_source

    return scan_source(lambda: records, validator, where="'corpus.fa'")


def test_protein_model_on_a_nucleotide_corpus_warns():
    from biocoreset.data.validation import Validator
    from biocoreset.errors import QualityWarning

    with pytest.warns(QualityWarning, match=r"the model reads protein .* every one of the 3 records of 'corpus.fa' holds only nucleotide letters"):  # fmt: skip
        _index(DNA, Validator(alphabet=PROTEIN))
    with warnings.catch_warnings():
        warnings.simplefilter("error", QualityWarning)
        _index(PEPTIDES, Validator(alphabet=PROTEIN))  # protein: no warning
        _index(DNA[:2] + PEPTIDES[:1], Validator(alphabet=PROTEIN))  # not every record DNA


def test_nucleotide_model_on_a_protein_corpus_warns():
    from biocoreset.data.validation import Validator
    from biocoreset.errors import QualityWarning
    from biocoreset.plugins import create

    adapter = create("adapter", "rna-fm", size="tiny", invalid="replace")  # letters replaced
    with pytest.warns(QualityWarning, match=r"the model reads nucleotides .* 3 of the 3 records"):
        _index(PEPTIDES, Validator.for_adapter(adapter, policy="replace"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", QualityWarning)
        _index(DNA, Validator.for_adapter(adapter, policy="replace"))


@pytest.mark.slow
def test_antiberty_on_dna_warns_from_the_shell(tmp_path, capsys):
    pytest.importorskip("antiberty")
    fasta = tmp_path / "dna.fa"
    dna = [(rid, seq.replace("U", "T")) for rid, seq in synthetic_rna_corpus(6, seed=1)]
    write_fasta(dna, fasta)
    argv = ["score", fasta, "--model", "antiberty", "-o", tmp_path / "s.parquet", "--subset", 2,
            "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "biocoreset score: warning: the model reads protein" in err and "dna.fa" in err


# -- the antibody corpus builder ------------------------------------------------------------------


def test_antibody_corpus_builder_refuses_overwrite_and_empty_chains(tmp_path, capsys):
    pytest.importorskip("anarci")
    from biocoreset.bench.antibody.corpus import main as build

    out = tmp_path / "g.fasta"
    out.write_text("mine\n")
    assert build(["-o", str(out), "--chains", "H"]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --force" in err and err.count("\n") == 1
    assert out.read_text() == "mine\n"
    assert build(["-o", str(tmp_path / "e.fasta"), "--chains", ""]) == 2
    err = capsys.readouterr().err
    assert "--chains '' names no chain" in err and err.count("\n") == 1
    assert build(["-o", str(out), "--chains", "H", "--force"]) == 0
    assert out.read_text().startswith(">")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fasta"]


def test_antibody_corpus_is_written_atomically(tmp_path):
    from biocoreset.bench.antibody.corpus import write_corpus
    from biocoreset.errors import InputError

    out = tmp_path / "g.fasta"
    out.write_text(">old\nEVQ\n")

    def records():
        yield "a", "EVQL"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        write_corpus(out, records())
    with pytest.raises(InputError, match="no records"):
        write_corpus(out, [])
    assert out.read_text() == ">old\nEVQ\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fasta"]


# -- a real full disk: a 2 MB tmpfs (needs root and mount; skipped otherwise) ---------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs filled to its last 8 KiB by a filler file; unmounted afterwards."""
    import os
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(
            "a real full disk needs root and mount (tmpfs); the monkeypatched tests cover it"
        )
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 8192))
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # -l: also when a file is open


def test_real_full_disk_finetune_is_one_line_and_leaves_nothing(ws, full_disk, capsys):
    line = _fails(capsys, *_finetune(ws, full_disk / "ft"))
    assert "No space left on device" in line and "free space" in line
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_real_full_disk_checkpoint_and_model(ws, full_disk):
    from biocoreset.modelio import load_model, save_model
    from biocoreset.train.checkpoints import save_checkpoint

    with pytest.raises(OSError) as info:
        save_checkpoint(full_disk / "ckpt.pt", {"w": torch.zeros(100_000)})
    assert info.value.errno == errno.ENOSPC and "ckpt.pt" in info.value.filename
    with pytest.raises(OSError) as info:
        save_model(load_model(ws / "model"), full_disk / "m", format="hf")  # safetensors
    assert info.value.errno == errno.ENOSPC
    assert not list(full_disk.glob("*.tmp")) and not list(full_disk.glob(".*.tmp"))
