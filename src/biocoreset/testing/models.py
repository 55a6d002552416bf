"""Tiny models for tests and plugin authors: real transformers architectures (``tiny_esm``,
``tiny_bert``), a pure-torch masked LM with its adapter (:func:`tiny_adapter`, float64, no
transformers import), and random RNA records.

>>> model, tokenizer = tiny_esm(seed=0)
>>> type(model).__name__
'EsmForMaskedLM'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from biocoreset.adapters.base import MaskedLMAdapter
from biocoreset.errors import InputError

__all__ = [
    "RNA_LETTERS",
    "TinyAdapter",
    "TinyMaskedLM",
    "random_rna",
    "tiny_adapter",
    "tiny_bert",
    "tiny_esm",
]

RNA_LETTERS = "ACGU"
_ESM_RNA_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "A", "C", "G", "U", "N", "<mask>"]


@contextlib.contextmanager
def _vocab_file(tokens: Sequence[str]) -> Iterator[str]:
    """A ``vocab.txt`` of ``tokens`` that exists while the block runs (a tokenizer reads it once,
    in its constructor, and saves its vocabulary from memory), then is removed."""
    with tempfile.TemporaryDirectory(prefix="biocoreset-vocab-") as folder:
        path = os.path.join(folder, "vocab.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(tokens) + "\n")
        yield path


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

    with _vocab_file(_ESM_RNA_VOCAB) as vocab_file:
        tokenizer = EsmTokenizer(vocab_file=vocab_file)
    config = EsmConfig(  # type: ignore[call-arg]  # attn_implementation: not in its signature
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
    # typed as nn.Module: transformers' ``@wraps(nn.Module.to)`` hides the bound ``self`` from mypy
    model: torch.nn.Module = EsmForMaskedLM(config)
    model = model.to(dtype).eval()
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
        with _vocab_file(vocab) as vocab_file:
            tokenizer = BertTokenizer(vocab_file=vocab_file, do_lower_case=False)
    config = BertConfig(  # type: ignore[call-arg]  # attn_implementation: not in its signature
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
    model: torch.nn.Module = BertForMaskedLM(config)  # see tiny_esm
    model = model.to(dtype).eval()
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


_TINY_VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", "A", "C", "G", "U", "N", "<mask>")


class TinyMaskedLM(nn.Module):
    """A pure-torch masked LM small enough for dense float64 references (about 200 parameters).

    Embedding, LayerNorm, a mean-pooled context (over real tokens only, so a row never depends on
    padding or on other rows), a two-layer position-wise MLP with biases, and a linear LM head.

    Args:
        vocab: Vocabulary size.
        dim: Model width.
        hidden: MLP width.
    """

    def __init__(self, vocab: int = len(_TINY_VOCAB), *, dim: int = 4, hidden: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, vocab]`` logits."""
        h = self.norm(self.embed(input_ids))
        keep = attention_mask.unsqueeze(-1).to(h.dtype)
        context = (h * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
        h = h + context
        h = h + self.down(torch.tanh(self.up(h)))
        return self.head(h)


class TinyAdapter(MaskedLMAdapter):
    """Adapter of :class:`TinyMaskedLM` over the letters ``ACGUN`` (one token per letter between
    ``<cls>`` and ``<eos>``); the default masking of ``docs/design.md``.

    Args:
        model: A :class:`TinyMaskedLM`.
        **options: :class:`~biocoreset.adapters.base.MaskedLMAdapter` options.
    """

    name = "tiny"
    mask_token_id = _TINY_VOCAB.index("<mask>")
    pad_token_id = _TINY_VOCAB.index("<pad>")
    random_token_ids = tuple(_TINY_VOCAB.index(c) for c in RNA_LETTERS)
    alphabet = frozenset("ACGUN")

    def __init__(self, model: nn.Module, **options: Any) -> None:
        options.setdefault("max_length", 62)
        super().__init__(model, **options)

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        """``<cls>`` + one token per letter + ``<eos>``; residues are maskable.

        Raises:
            InputError: A letter outside ``ACGUN`` (the message names the record and position).
        """
        ids = [0]
        for pos, letter in enumerate(sequence.upper()):
            if letter not in self.alphabet:
                raise InputError(
                    f"record {record_id!r}: residue {pos + 1} ({letter!r}) is not one of ACGUN."
                )
            ids.append(_TINY_VOCAB.index(letter))
        ids.append(2)
        return ids, [False, *([True] * len(sequence)), False]

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of the tiny model."""
        return self.model(input_ids, attention_mask)


def tiny_adapter(
    *, seed: int = 0, dtype: torch.dtype = torch.float64, **options: Any
) -> TinyAdapter:
    """A :class:`TinyAdapter` over a randomly initialised :class:`TinyMaskedLM` (no transformers).

    >>> adapter = tiny_adapter()
    >>> batch = adapter.collate(random_rna(3, seed=0), seed=0)
    >>> tuple(adapter.per_sample_loss(batch).shape), next(adapter.model.parameters()).dtype
    ((3,), torch.float64)
    """
    torch.manual_seed(seed)
    model = TinyMaskedLM().to(dtype).eval()
    with torch.no_grad():  # non-zero biases and norms so every parameter matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return TinyAdapter(model, **options)
