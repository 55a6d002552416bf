"""``biocoreset.testing.models``: the tiny models leave nothing behind in the temp directory."""

from __future__ import annotations

import tempfile

from biocoreset.testing import tiny_bert, tiny_esm


def test_tiny_models_leave_no_vocabulary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, esm_tokenizer = tiny_esm()
    _, bert_tokenizer = tiny_bert()
    assert list(tmp_path.glob("biocoreset-vocab-*")) == []
    assert esm_tokenizer("ACGU")["input_ids"] == [0, 4, 5, 6, 7, 2]  # the vocabulary was read
    saved = tmp_path / "saved"
    esm_tokenizer.save_pretrained(saved)  # and is saved from memory
    assert (saved / "vocab.txt").read_text().split() == list(esm_tokenizer.get_vocab())
    assert bert_tokenizer.convert_tokens_to_ids("[MASK]") == 4
