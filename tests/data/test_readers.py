"""Streaming readers: FASTA/FASTQ (plain and gzip) and CSV/TSV, with clear errors for bad files."""

from __future__ import annotations

import gzip

import pytest

from biocoreset.data.readers import ByteCounter, detect_format, read_records
from biocoreset.data.sources import as_source, open_sequences
from biocoreset.errors import ConfigError, InputError

FASTA = ">r1 first record\nACGU\nAC\n>r2\nGGGA\n\n>r3 x\nU\n"
RECORDS = [("r1", "ACGUAC"), ("r2", "GGGA"), ("r3", "U")]
FASTQ = "@r1 desc\nACGUAC\n+\nIIIIII\n@r2\nGGGA\n+r2\nIIII\n@r3\nU\n+\nI\n"


def _write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_fasta_plain_and_gzip(tmp_path, gz):
    path = _write(tmp_path / ("c.fa.gz" if gz else "c.fa"), FASTA, gz)
    assert list(read_records(path)) == RECORDS
    assert detect_format(path) == "fasta"


def test_gzip_detected_by_content_not_name(tmp_path):
    path = _write(tmp_path / "corpus.fasta", FASTA, gz=True)  # gzip without .gz
    assert list(read_records(path)) == RECORDS


@pytest.mark.parametrize("gz", [False, True])
def test_fastq_plain_and_gzip(tmp_path, gz):
    path = _write(tmp_path / ("r.fq.gz" if gz else "r.fastq"), FASTQ, gz)
    assert list(read_records(path)) == RECORDS


def test_format_sniffed_from_content(tmp_path):
    assert detect_format(_write(tmp_path / "a.txt", FASTA)) == "fasta"
    assert detect_format(_write(tmp_path / "b.seqs", FASTQ)) == "fastq"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(_write(tmp_path / "c.txt", "hello\n"))


@pytest.mark.parametrize(("name", "sep"), [("t.csv", ","), ("t.tsv", "\t"), ("t.csv.gz", ",")])
def test_tables_with_named_columns(tmp_path, name, sep):
    text = (
        sep.join(["label", "acc", "seq"])
        + "\n"
        + "\n".join(sep.join(["x", rid, seq]) for rid, seq in RECORDS)
        + "\n"
    )
    path = _write(tmp_path / name, text, gz=name.endswith(".gz"))
    src = open_sequences(path, id_column="acc", sequence_column="seq")
    assert list(src) == RECORDS
    assert list(src) == RECORDS  # re-iterable: the file is re-opened


def test_table_missing_column_lists_header(tmp_path):
    path = _write(tmp_path / "t.csv", "name,seq\nr1,ACGU\n")
    with pytest.raises(InputError, match=r"no column\(s\) \['id'\].*header is \['name', 'seq'\]"):
        list(read_records(path, sequence_column="seq"))


def test_table_empty_id_names_line(tmp_path):
    path = _write(tmp_path / "t.csv", "id,sequence\nr1,ACGU\n,GG\n")
    with pytest.raises(InputError, match="line 3: empty id"):
        list(read_records(path))


def test_not_a_fasta_file(tmp_path):
    path = _write(tmp_path / "corpus.fasta", "id,sequence\nr1,ACGU\n")
    with pytest.raises(InputError, match="is not a FASTA file"):
        list(read_records(path))
    with pytest.raises(InputError, match="is not a FASTA file"):
        list(read_records(_write(tmp_path / "x.csv", FASTQ), format="fasta"))


@pytest.mark.parametrize("name", ["empty.fa", "empty.fastq", "empty.csv", "empty.fa.gz"])
def test_empty_file(tmp_path, name):
    path = _write(tmp_path / name, "\n\n", gz=name.endswith(".gz"))
    with pytest.raises(InputError, match="is empty"):
        list(read_records(path))


def test_empty_header(tmp_path):
    path = _write(tmp_path / "c.fa", ">r1\nACGU\n>\nGG\n")
    with pytest.raises(InputError, match="record 2 has an empty header"):
        list(read_records(path))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list(read_records(tmp_path / "nope.fa"))
    with pytest.raises(InputError, match="is a folder"):
        list(read_records(tmp_path))


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(FASTA.encode() * 50)
    path = tmp_path / "c.fa.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=r"not a valid FASTA file|cannot be read"):
        list(read_records(path))


def test_records_are_streamed(tmp_path):
    # The first record is produced before the malformed second one is read.
    path = _write(tmp_path / "r.fastq", "@r1\nACGU\n+\nIIII\n@r2\nACGU\n+\nII\n")
    it = read_records(path)
    assert next(it) == ("r1", "ACGU")
    with pytest.raises(InputError, match="not a valid FASTQ file"):
        next(it)


def test_byte_counter_reports_progress(tmp_path):
    path = _write(tmp_path / "c.fa.gz", FASTA * 100, gz=True)
    counter = ByteCounter()
    n = sum(1 for _ in read_records(path, counter=counter))
    assert n == 300
    assert counter.bytes_read == path.stat().st_size


def test_bad_format_option(tmp_path):
    with pytest.raises(ConfigError, match="format must be one of"):
        read_records(_write(tmp_path / "c.fa", FASTA), format="genbank")


def test_as_source_accepts_paths_lists_and_generators(tmp_path):
    path = _write(tmp_path / "c.fa", FASTA)
    assert list(as_source(str(path))) == RECORDS
    assert list(as_source(iter(RECORDS))) == RECORDS
    with pytest.raises(InputError, match="pairs"):
        list(as_source([("a", "C", "x")]))


def test_full_headers_on_request(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">r1 tRNA Homo sapiens\nACGU\n>r2\nGG\n", encoding="utf-8")
    assert list(read_records(fasta)) == [("r1", "ACGU"), ("r2", "GG")]
    assert list(open_sequences(fasta).iter_with_headers()) == [
        ("r1", "ACGU", "r1 tRNA Homo sapiens"),
        ("r2", "GG", "r2"),
    ]
    fastq = tmp_path / "x.fq"
    fastq.write_text("@q1 lane=3\nACGU\n+\nIIII\n", encoding="utf-8")
    assert list(read_records(fastq, headers=True)) == [("q1", "ACGU", "q1 lane=3")]
    table = tmp_path / "x.csv"
    table.write_text("id,sequence\nt1,ACGU\n", encoding="utf-8")
    assert list(read_records(table, headers=True)) == [("t1", "ACGU", "t1")]
