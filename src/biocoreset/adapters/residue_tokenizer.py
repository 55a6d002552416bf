"""A per-residue tokenizer for model folders whose vocabulary is single upper-case residues.

Some protein BERTs (AntiBERTy, ProtBERT-style folders) ship a ``vocab.txt`` of special tokens and
one upper-case letter per residue, without a tokenizer config. ``transformers`` then builds a
``BertTokenizer`` whose basic tokenizer splits on whitespace and whose WordPiece step looks the
whole word up: ``"SQVQ"`` becomes one ``[UNK]``, silently (with or without ``do_lower_case``).
:func:`residue_tokenizer` builds the tokenizer such a folder means: a ``tokenizers`` WordLevel
model over the same vocabulary (same ids), one token per character, ``[CLS] $A [SEP]`` around the
sequence. :func:`repair_residue_tokenizer` swaps it in only when the loaded tokenizer cannot
tokenise its own residue letters; anything else is returned unchanged.

Example:
    >>> tok = residue_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "S"])
    >>> tok("SAC")["input_ids"], tok.mask_token_id, tok.pad_token_id
    ([2, 7, 5, 6, 3], 4, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from biocoreset.errors import ConfigError

__all__ = ["is_residue_vocab", "repair_residue_tokenizer", "residue_tokenizer"]

# Special-token roles and the names BERT-style (and ESM-style) vocabularies give them.
_ROLES: dict[str, tuple[str, ...]] = {
    "pad_token": ("[PAD]", "<pad>"),
    "unk_token": ("[UNK]", "<unk>"),
    "cls_token": ("[CLS]", "<cls>", "<s>"),
    "sep_token": ("[SEP]", "<eos>", "</s>"),
    "mask_token": ("[MASK]", "<mask>"),
}


def _bracketed(token: str) -> bool:
    return len(token) > 2 and token[0] + token[-1] in ("<>", "[]")


def is_residue_vocab(tokens: Sequence[str] | Mapping[str, int]) -> bool:
    """Whether a vocabulary is special tokens plus single upper-case residue letters.

    Bracketed entries (``[CLS]``, ``<mask>``, ``[unused0]``) are special; every other entry must be
    one upper-case letter (``X``, ``B``, ``Z``... included), and there must be at least one.

    >>> is_residue_vocab(["[PAD]", "[CLS]", "A", "C"]), is_residue_vocab(["[PAD]", "AC", "A"])
    (True, False)
    >>> is_residue_vocab(["[PAD]", "a", "c"])
    False
    """
    letters = [t for t in tokens if not _bracketed(t)]
    return bool(letters) and all(len(t) == 1 and t.isalpha() and t.isupper() for t in letters)


def residue_tokenizer(
    tokens: Sequence[str] | Mapping[str, int], specials: Mapping[str, str] | None = None
) -> Any:
    """A ``PreTrainedTokenizerFast``: one token per character over ``tokens`` (ids kept).

    Args:
        tokens: The vocabulary, in id order (``vocab.txt`` lines) or as ``{token: id}``.
        specials: ``{"cls_token": "[CLS]", ...}``; default: found by name (``[CLS]``/``<cls>``,
            ``[SEP]``/``<eos>``, ``[PAD]``, ``[UNK]``, ``[MASK]``).

    Raises:
        ConfigError: The vocabulary has no mask, pad, unknown, start or end token.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokens, Mapping):
        vocab = {str(t): int(i) for t, i in tokens.items()}
    else:
        vocab = {str(t): i for i, t in enumerate(tokens)}
    roles = dict(specials or {})
    for role, names in _ROLES.items():
        if roles.get(role) is None:
            roles[role] = next((n for n in names if n in vocab), None)  # type: ignore[assignment]
    missing = [r for r, t in roles.items() if r in _ROLES and (t is None or t not in vocab)]
    if missing:
        raise ConfigError(
            f"cannot build a per-residue tokenizer: the vocabulary has no {', '.join(missing)} "
            f"(looked for {[_ROLES[r] for r in missing]}); save a tokenizer with the model."
        )
    unk, cls, sep = roles["unk_token"], roles["cls_token"], roles["sep_token"]
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, **roles)


def repair_residue_tokenizer(tokenizer: Any) -> Any:
    """``tokenizer``, or a :func:`residue_tokenizer` over its vocabulary when its vocabulary is
    single upper-case residues that it does not tokenise one per letter (the ``[UNK]`` trap).

    The ids, and the special tokens the loaded tokenizer names, are kept.
    """
    try:
        vocab = dict(tokenizer.get_vocab())
    except (AttributeError, NotImplementedError):
        return tokenizer
    if not is_residue_vocab(vocab):
        return tokenizer
    letters = sorted(t for t in vocab if not _bracketed(t))
    try:
        pieces = tokenizer.tokenize("".join(letters))
    except Exception:  # a tokenizer that fails on its own letters is the broken case
        pieces = None
    if pieces == letters:
        return tokenizer
    specials: dict[str, str] = {}
    for role in _ROLES:
        token = getattr(tokenizer, role, None)
        if isinstance(token, str) and token in vocab:
            specials[role] = token
    return residue_tokenizer(vocab, specials)
