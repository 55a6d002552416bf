"""Parquet input (issue 35 item 2): string types, row groups, errors naming the row group, and
scores equal to the same records read from FASTA."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.data.readers import ROW_IDS, ByteCounter, detect_format, read_records
from biocoreset.data.sources import open_sequences
from biocoreset.data.synthetic import write_fasta
from biocoreset.errors import InputError
from biocoreset.testing import random_rna, tiny_esm

RECORDS = [(f"r{i}", seq) for i, seq in enumerate(["ACGU", "GG", "UUAC", "A", "CCGA", "GU", "ACA"])]


def _write(path, ids, seqs, id_type=None, seq_type=None, row_group_size=3):
    id_type, seq_type = id_type or pa.string(), seq_type or pa.string()
    table = pa.table({"acc": pa.array(ids, id_type), "seq": pa.array(seqs, seq_type)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize(
    "kind",
    [pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string()), pa.string_view()],
    ids=["string", "large_string", "dictionary", "string_view"],
)
def test_string_types_and_row_groups(tmp_path, kind):
    ids, seqs = zip(*RECORDS, strict=True)
    path = _write(tmp_path / "c.parquet", list(ids), list(seqs), kind, kind)
    assert pq.ParquetFile(path).num_row_groups == 3
    assert detect_format(path) == "parquet"
    src = open_sequences(path, id_column="acc", sequence_column="seq")
    assert list(src) == RECORDS and list(src) == RECORDS  # re-iterable
    assert src.reader_options()["format"] == "parquet"


def test_parquet_detected_by_magic_and_row_ids(tmp_path):
    ids, seqs = zip(*RECORDS, strict=True)
    path = _write(tmp_path / "corpus.data", list(ids), list(seqs))
    assert detect_format(path) == "parquet"
    got = list(read_records(path, id_column=ROW_IDS, sequence_column="seq"))
    assert got == [(f"corpus:{i}", s) for i, s in enumerate(seqs, start=1)]  # numbered over groups


def test_parquet_is_streamed_by_row_group(tmp_path):
    ids, seqs = zip(*RECORDS, strict=True)
    path = _write(tmp_path / "c.parquet", list(ids), list(seqs))
    counter = ByteCounter()
    it = read_records(path, id_column="acc", sequence_column="seq", counter=counter)
    assert next(it) == RECORDS[0] and counter.bytes_read == 0  # nothing counted before group 0 ends
    for _ in range(3):
        next(it)
    one_group = counter.bytes_read
    list(it)
    assert 0 < one_group < counter.bytes_read <= path.stat().st_size


def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_parquet_errors_name_the_row_group(tmp_path):
    ids, seqs = zip(*RECORDS, strict=True)
    path = _write(tmp_path / "c.parquet", list(ids), list(seqs))
    with pytest.raises(InputError) as exc:
        list(read_records(path))  # default columns id/sequence are missing
    text = _one_line(exc)
    assert "row group 0 (of 3)" in text and "no column(s) ['id', 'sequence']" in text
    assert "['acc', 'seq']" in text and "--id-column @row" in text

    nulls = _write(tmp_path / "n.parquet", list(ids), [*seqs[:4], None, *seqs[5:]])
    with pytest.raises(InputError) as exc:
        list(read_records(nulls, id_column="acc", sequence_column="seq"))
    assert "row group 1 (of 3), row 1 (row 5 of the file): null sequence in column 'seq'" in (
        _one_line(exc)
    )

    table = pa.table({"acc": list(ids), "seq": list(range(len(ids)))})
    pq.write_table(table, tmp_path / "i.parquet", row_group_size=3)
    with pytest.raises(InputError) as exc:
        list(read_records(tmp_path / "i.parquet", id_column="acc", sequence_column="seq"))
    assert "row group 0 (of 3): column 'seq' is int64, not a string column" in _one_line(exc)

    empty_id = _write(tmp_path / "e.parquet", ["a", " ", "c"], ["AC", "GG", "U"])
    with pytest.raises(InputError, match=r"row group 0 \(of 1\), row 1 \(row 2 of the file\)"):
        list(read_records(empty_id, id_column="acc", sequence_column="seq"))

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(InputError, match="is not a valid Parquet file") as exc:
        list(read_records(broken))
    _one_line(exc)


def test_parquet_scores_equal_fasta_scores(tmp_path):
    model, tok = tiny_esm(seed=3, dtype=torch.float64)
    adapter = HFAdapter(model, tok)
    records = random_rna(20, seed=4, min_len=3, max_len=30)
    fasta = write_fasta(records, tmp_path / "c.fa")
    ids, seqs = zip(*records, strict=True)
    table = pa.table(
        {
            "id": pa.array(ids, pa.large_string()),
            "sequence": pa.array(seqs, pa.dictionary(pa.int16(), pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "c.parquet", row_group_size=6)
    a = score(adapter, fasta, subset=6, batch_size=4, damping=1e-3)
    b = score(adapter, tmp_path / "c.parquet", subset=6, batch_size=4, damping=1e-3)
    assert b.ids == a.ids and b.metadata["subset_ids"] == a.metadata["subset_ids"]
    assert a.scores.dtype == np.float64
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-12, atol=0)
    assert b.metadata["reader"]["format"] == "parquet"
