"""Helpers for tests and plugin authors: tiny real architectures and conformance checks.

>>> model, tokenizer = tiny_esm(seed=0)
>>> type(model).__name__
'EsmForMaskedLM'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Scorer, Selector

__all__ = [
    "RNA_LETTERS",
    "check_selector",
    "random_rna",
    "tiny_bert",
    "tiny_esm",
]

RNA_LETTERS = "ACGU"
_ESM_RNA_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "A", "C", "G", "U", "N", "<mask>"]


def _write_vocab(tokens: Sequence[str]) -> str:
    folder = tempfile.mkdtemp(prefix="biocoreset-vocab-")
    path = os.path.join(folder, "vocab.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(tokens) + "\n")
    return path


def tiny_esm(
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    layers: int = 2,
    hidden: int = 16,
    heads: int = 2,
    max_positions: int = 66,
    tie: bool = True,
) -> tuple[Any, Any]:
    """A tiny randomly initialised ``EsmForMaskedLM`` over an RNA alphabet, and its tokenizer.

    Eager attention, eval mode, no dropout.
    """
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    tokenizer = EsmTokenizer(vocab_file=_write_vocab(_ESM_RNA_VOCAB))
    config = EsmConfig(
        vocab_size=len(_ESM_RNA_VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        position_embedding_type="absolute",
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        emb_layer_norm_before=True,
        token_dropout=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=tie,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = EsmForMaskedLM(config).to(dtype).eval()
    with torch.no_grad():  # non-zero biases and norms so every parameter matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, tokenizer


def tiny_bert(
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    layers: int = 2,
    hidden: int = 16,
    heads: int = 2,
) -> tuple[Any, Any]:
    """A tiny randomly initialised ``BertForMaskedLM`` with a character WordPiece vocabulary."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    letters = list("ACGUN")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *[f"##{c}" for c in letters]]
    import inspect

    if "vocab" in inspect.signature(BertTokenizer.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False)
    else:  # pragma: no cover - transformers 4.x
        tokenizer = BertTokenizer(vocab_file=_write_vocab(vocab), do_lower_case=False)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(config).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, tokenizer


def random_rna(
    n: int, *, seed: int = 0, min_len: int = 5, max_len: int = 30, prefix: str = "seq"
) -> list[tuple[str, str]]:
    """``n`` random ``(id, sequence)`` RNA records of varied lengths.

    >>> random_rna(2, seed=1)[0][0]
    'seq0'
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        out.append((f"{prefix}{i}", "".join(rng.choice(list(RNA_LETTERS), size=length))))
    return out


def check_selector(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """Conformance checks every selector should pass.

    Checks the protocol, that exactly ``budget`` distinct in-range int64 indices come back, and that
    the same seed gives the same selection.

    Raises:
        AssertionError: A check failed (the message says which).
    """
    assert isinstance(selector, Selector), f"{selector!r} does not implement the Selector protocol"
    scores = np.random.default_rng(seed).normal(size=n)
    a = np.asarray(selector.select(scores, budget, seed=seed))
    b = np.asarray(selector.select(scores, budget, seed=seed))
    assert a.dtype == np.int64, f"indices must be int64, got {a.dtype}"
    assert len(a) == budget, f"expected {budget} indices, got {len(a)}"
    assert len(np.unique(a)) == budget, "indices contain duplicates"
    assert a.min() >= 0 and a.max() < n, "indices out of range"
    assert np.array_equal(a, b), "the same seed gave different selections"


def check_protocols(obj: object) -> list[str]:
    """Names of the protocols ``obj`` satisfies (for quick diagnostics)."""
    protos = {
        "ModelAdapter": ModelAdapter,
        "CurvatureEstimator": CurvatureEstimator,
        "Scorer": Scorer,
        "Selector": Selector,
    }
    return [name for name, proto in protos.items() if isinstance(obj, proto)]
