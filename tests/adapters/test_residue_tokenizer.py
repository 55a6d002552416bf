"""A plain BERT folder whose vocab.txt is upper-case residues loads with a per-residue tokenizer.

transformers' BertTokenizer maps every residue of such a vocabulary to [UNK]; the hf adapter must
rebuild the tokenizer (same ids) and still refuse residues that are not in the vocabulary.
"""

from __future__ import annotations

import pytest
import torch

from biocoreset.adapters.hf import HFAdapter
from biocoreset.adapters.residue_tokenizer import (
    is_residue_vocab,
    repair_residue_tokenizer,
    residue_tokenizer,
)
from biocoreset.errors import ConfigError, InputError
from biocoreset.testing import tiny_esm

AMINO = "ACDEFGHIKLMNPQRSTVWY"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *AMINO]


def _folder(tmp_path, max_positions=40):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=max_positions,
        pad_token_id=0,
    )
    BertForMaskedLM(config).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return tmp_path


def test_transformers_alone_maps_residues_to_unk(tmp_path):
    # The trap this module exists for; if transformers fixes it, repair becomes a no-op.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_folder(tmp_path), local_files_only=True)
    assert tok.tokenize("SQVQ") != list("SQVQ")


def test_folder_loads_with_per_residue_ids(tmp_path):
    adapter = HFAdapter.from_path(_folder(tmp_path))
    ids, maskable = adapter.encode("s", "SQVQ")
    assert ids == [2] + [VOCAB.index(c) for c in "SQVQ"] + [3]
    assert maskable == [False, True, True, True, True, False]
    assert adapter.mask_token_id == 4 and adapter.pad_token_id == 0
    assert adapter.alphabet == frozenset(AMINO)
    assert adapter.max_length == 40 - 2


def test_loss_matches_the_model_on_the_same_ids(tmp_path):
    adapter = HFAdapter.from_path(_folder(tmp_path))
    batch = adapter.collate([("a", "EVQLVESGG"), ("b", "DIQMTQ")], seed=3)
    got = adapter.per_sample_loss(batch)
    ids = batch.input_ids
    labels = batch.labels
    with torch.no_grad():
        logits = adapter.model(input_ids=ids, attention_mask=batch.attention_mask).logits
    for row in range(2):
        keep = labels[row] != -100
        want = torch.nn.functional.cross_entropy(logits[row][keep], labels[row][keep])
        assert torch.allclose(got[row].detach(), want, rtol=1e-6)


def test_unknown_residues_are_still_refused(tmp_path):
    adapter = HFAdapter.from_path(_folder(tmp_path))
    with pytest.raises(InputError, match=r"residue 3 \('B'\) is not in the tokenizer's vocabulary"):
        adapter.encode("s", "SQBQ")
    lenient = HFAdapter.from_path(_folder(tmp_path), unknown="unk")
    ids, _ = lenient.encode("s", "SQBQ")
    assert ids.count(1) == 1


def test_too_long_is_truncated_or_refused(tmp_path):
    adapter = HFAdapter.from_path(_folder(tmp_path, max_positions=12), long_policy="error")
    adapter.encode("ok", "A" * 10)
    with pytest.raises(InputError):
        adapter.collate([("long", "A" * 11)], seed=0)


def test_repair_leaves_working_tokenizers_alone():
    tok = tiny_esm()[1]
    assert repair_residue_tokenizer(tok) is tok
    good = residue_tokenizer(VOCAB)
    assert repair_residue_tokenizer(good) is good


def test_vocab_checks():
    assert is_residue_vocab(VOCAB)
    assert not is_residue_vocab(["[PAD]", "[CLS]", "##A", "A"])
    with pytest.raises(ConfigError, match="mask_token"):
        residue_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "A"])
