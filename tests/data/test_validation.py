"""Validation against the adapter's alphabet, empty and long sequences, duplicate ids."""

from __future__ import annotations

import numpy as np
import pytest

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter, char_alphabet
from biocoreset.data.synthetic import write_fasta
from biocoreset.data.validation import Validator, scan_source
from biocoreset.errors import ConfigError, InputError
from biocoreset.testing import random_rna, tiny_bert, tiny_esm


def test_error_policy_names_record_position_and_letter():
    v = Validator(alphabet="ACGUN", where="corpus.fa")
    with pytest.raises(
        InputError, match=r"record 'r7' \(record 3 of corpus.fa\): residue 4 is 'Z'.*ACGNU"
    ):
        v(3, "r7", "ACGZUB")


def test_replace_policy_counts():
    v = Validator(alphabet="ACGUN", policy="replace")
    assert v(1, "a", "ACZZU") == "ACNNU"
    assert v(2, "b", "ACGU") == "ACGU"
    rep = v.report
    assert (rep.records, rep.kept, rep.replaced_records, rep.replaced_letters) == (2, 2, 1, 2)
    assert dict(rep.invalid_letters) == {"Z": 2}


def test_skip_policy_counts():
    v = Validator(alphabet="ACGU", policy="skip")
    assert v(1, "a", "ACXU") is None
    assert v(2, "b", "") is None
    assert v(3, "c", "acgu") == "ACGU"  # lower case is folded when the alphabet has none
    rep = v.report
    assert (rep.kept, rep.skipped_invalid, rep.skipped_empty, rep.uppercased_records) == (
        1,
        1,
        1,
        1,
    )
    assert "skipped 1 with invalid letters" in rep.summary()


@pytest.mark.parametrize("policy", ["error", "replace"])
def test_empty_sequence_is_an_error_unless_skipped(policy):
    v = Validator(alphabet="ACGUN", policy=policy)
    with pytest.raises(InputError, match=r"record 'e'.*empty sequence"):
        v(5, "e", "")


def test_replace_needs_a_letter_in_the_alphabet():
    with pytest.raises(ConfigError, match="needs a replacement letter"):
        Validator(alphabet="AB", policy="replace")
    with pytest.raises(ConfigError, match="not in the adapter's alphabet"):
        Validator(alphabet="ACGU", policy="replace", replacement="N")
    with pytest.raises(ConfigError, match="must be one of"):
        Validator(alphabet="ACGU", policy="drop")


def test_long_sequences_follow_the_adapter_policy():
    v = Validator(alphabet="ACGU", max_length=3, long_policy="error")
    with pytest.raises(InputError, match=r"record 'l'.*4 residues exceeds the model limit of 3"):
        v(1, "l", "ACGU")
    v = Validator(alphabet="ACGU", max_length=3, long_policy="truncate")
    assert v(1, "l", "ACGU") == "ACGU"
    assert v.report.long_records == 1


def test_adapter_hook_normalises_and_rejects():
    class Adapter:
        alphabet = frozenset("ACGU")

        def validate(self, record_id, sequence):
            if "?" in sequence:
                raise InputError(f"record {record_id!r}: '?'")
            return sequence.replace("T", "U")

    assert Validator.for_adapter(Adapter())(1, "a", "ACGT") == "ACGU"
    with pytest.raises(InputError, match="'\\?'"):
        Validator.for_adapter(Adapter())(1, "a", "AC?")
    skip = Validator.for_adapter(Adapter(), policy="skip")
    assert skip(1, "a", "AC?") is None and skip.report.skipped_invalid == 1


def test_adapter_without_alphabet_checks_only_emptiness():
    v = Validator.for_adapter(object())
    assert v(1, "a", "anything goes") == "anything goes"


def test_hf_alphabet_from_vocab():
    assert char_alphabet(tiny_esm()[1]) == frozenset("ACGUN")
    assert char_alphabet(tiny_bert()[1]) == frozenset("ACGUN")
    assert HFAdapter(*tiny_esm()).alphabet == frozenset("ACGUN")


def test_hf_alphabet_none_for_a_subword_vocab(tmp_path):
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "AC", "GU", "A", "C"]) + "\n"
    )
    assert char_alphabet(BertTokenizer(vocab_file=str(vocab))) is None


def test_duplicate_ids_name_both_records(tmp_path):
    path = write_fasta([("a", "ACGU"), ("b", "GG"), ("c", "CC"), ("b", "AA")], tmp_path / "d.fa")
    model, tok = tiny_esm()
    with pytest.raises(InputError, match=r"duplicate sequence id 'b': records 2 and 4 of .*d.fa"):
        score(model, path, tokenizer=tok, subset=2)


def test_scan_source_hashes_data_and_maps_wanted_ids():
    recs = [("a", "ACGU"), ("b", "XX"), ("c", "GG")]
    v = Validator(alphabet="ACGU", policy="skip")
    idx = scan_source(lambda: recs, v, wanted_ids=["c"])
    assert (idx.num_rows, idx.num_records, idx.positions) == (2, 3, {"c": 1})
    other = scan_source(lambda: [("a", "ACGU"), ("c", "GA")], Validator(alphabet="ACGU"))
    assert other.digest != idx.digest


def test_scan_source_rejects_no_records():
    with pytest.raises(InputError, match="holds no sequences"):
        scan_source(lambda: [], Validator())
    with pytest.raises(InputError, match="none of its 1 records is left"):
        scan_source(lambda: [("a", "XX")], Validator(alphabet="ACGU", policy="skip"))


def _scores(records, **kw):
    model, tok = tiny_esm(seed=2)
    return score(HFAdapter(model, tok), records, batch_size=3, damping=1e-3, **{"subset": 4, **kw})


def test_score_invalid_letters_under_each_policy():
    records = random_rna(8, seed=1, min_len=4)
    bad = [*records[:3], ("bad", "ACZGU"), *records[3:]]
    with pytest.raises(InputError, match=r"record 'bad' \(record 4 of .*\): residue 3 is 'Z'"):
        _scores(bad)
    skipped = _scores(bad, invalid="skip", subset=[r[0] for r in records[:4]])
    reference = _scores(records, subset=[r[0] for r in records[:4]])
    assert skipped.ids == reference.ids
    np.testing.assert_allclose(skipped.scores, reference.scores, rtol=1e-12)
    assert skipped.metadata["validation"]["skipped_invalid"] == 1
    replaced = _scores(bad, invalid="replace", subset=[r[0] for r in records[:4]])
    cleaned = _scores(
        [*records[:3], ("bad", "ACNGU"), *records[3:]], subset=[r[0] for r in records[:4]]
    )
    np.testing.assert_allclose(replaced.scores, cleaned.scores, rtol=1e-12)
    assert replaced.metadata["validation"]["invalid_letters"] == {"Z": 1}


def test_score_empty_sequence(tmp_path):
    path = tmp_path / "e.fa"
    path.write_text(">a\nACGU\n>empty\n>c\nGGA\n")
    model, tok = tiny_esm()
    with pytest.raises(InputError, match=r"record 'empty' \(record 2 of .*\): empty sequence"):
        score(model, path, tokenizer=tok, subset=1)
    result = score(model, path, tokenizer=tok, subset=1, invalid="skip")
    assert result.ids == ["a", "c"] and result.metadata["validation"]["skipped_empty"] == 1


def test_adapter_skip_record_is_dropped_whatever_the_policy():
    from biocoreset.data.hygiene import SkipRecord

    class Adapter:
        alphabet = None

        def validate(self, record_id, sequence):
            if "X" in sequence:
                raise SkipRecord(f"record {record_id!r}: X")
            return sequence

    v = Validator.for_adapter(Adapter())  # pipeline policy "error"
    assert v(1, "a", "ACX") is None and v(2, "b", "ACG") == "ACG"
    assert v.report.skipped_invalid == 1 and v.report.kept == 1
