"""Model families the generic ``hf`` adapter recognises from a model's config.

A :class:`ModelFamily` tells :class:`~biocoreset.adapters.hf.HFAdapter` what a bare
``transformers`` masked LM cannot: the longest input it was trained for, a tokenizer to use when
none is given, and readable parameter-group names. Families are recognised from
``config.model_type``, ``config.architectures`` and the config class's module — never by importing
a model package — in the order of :func:`families` (the first match wins; ``generic`` matches
everything):

* ``rna-fm`` — ``model_type="esm"`` with absolute positions, 25 tokens and
  ``emb_layer_norm_before`` (RNA-FM run as ``EsmForMaskedLM``); limit
  ``max_position_embeddings − (pad + 1) − specials`` (1,022 residues).
* ``esm-2`` — ``model_type="esm"`` with rotary positions; same limit (ESM-2 was trained on
  1,024-token crops: 1,022 residues).
* ``esm-1b`` — any other ``model_type="esm"`` (ESM-1b, Nucleotide Transformer); same limit.
* ``multimolecule`` — a config class from the ``multimolecule`` package, a multimolecule
  ``model_type`` (``rnafm``, ``rinalmo``, ``splicebert``, ...) or architecture name; limit
  ``max_position_embeddings − (pad + 2) − specials`` when positions are learned with a padding
  index (multimolecule adds one to fairseq position ids), else ``− specials``.
* ``bert`` — BERT-like ``model_type`` (``bert``, ``roberta``, ``modernbert``, ...); limit
  ``− (pad + 1) − specials`` for RoBERTa-style learned positions, else ``− specials``.
* ``generic`` — anything else; limit as ``bert``.

"specials" is the number of special tokens the tokenizer adds (2 for ``<cls>``/``<eos>``).
ESM families also get a default tokenizer when none is given: the RNA-FM alphabet for ``rna-fm``,
the 33-token ESM protein alphabet for ``esm-2``/``esm-1b`` models with ``vocab_size=33``.

Families are registered through the ``biocoreset_register_families`` plugin hook (the built-ins
lazily, by the plugin ``biocoreset.adapters.hf_families``); :func:`families` returns them in
detection order. Adding one from a plugin (see ``docs/adapters.md``)::

    from biocoreset import hookimpl
    from biocoreset.adapters.hf_families import ModelFamily

    CADUCEUS = ModelFamily(
        name="caduceus",
        description="Caduceus DNA models",
        matches=lambda config: getattr(config, "model_type", "") == "caduceus",
        position_offset=lambda config, model: 0,
        group_rules=((r"\\.mixer\\.", "mixer"),),
    )

    @hookimpl
    def biocoreset_register_families(register):
        register("caduceus", CADUCEUS, description="Caduceus DNA models")  # tried before "generic"

Example:
    >>> from biocoreset.testing import tiny_bert
    >>> detect_family(tiny_bert()[0]).name
    'bert'
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from torch import nn

from biocoreset.adapters.base import default_parameter_groups

__all__ = [
    "BERT_MODEL_TYPES",
    "BUILTIN_FAMILIES",
    "ESM_PROTEIN_TOKENS",
    "MULTIMOLECULE_MODEL_TYPES",
    "ModelFamily",
    "detect_family",
    "esm_protein_tokenizer",
    "families",
    "learned_position_offset",
]

#: The ESM-1b / ESM-2 protein vocabulary in id order (``facebook/esm2_*`` ``vocab.txt``).
ESM_PROTEIN_TOKENS: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W",
    "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
)  # fmt: skip

#: ``model_type`` values of multimolecule's masked-LM configs (recognised without importing it).
MULTIMOLECULE_MODEL_TYPES = frozenset({
    "aido.rna", "calm", "ernierna", "rinalmo", "rnabert", "rnaernie", "rnafm", "rnamsm",
    "ribonanzanet", "splicebert", "utrbert", "utrlm",
})  # fmt: skip

#: ``model_type`` values handled as BERT-style encoders.
BERT_MODEL_TYPES = frozenset({
    "albert", "bert", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "megatron-bert",
    "modernbert", "mpnet", "nomic_bert", "roberta", "roberta-prelayernorm", "xlm-roberta",
    "xlm-roberta-xl",
})  # fmt: skip

_MULTIMOLECULE_ARCH = re.compile(
    r"^(AidoRna|CaLm|ErnieRna|RiNALMo|RnaBert|RnaErnie|RnaFm|RnaMsm|SpliceBert|UtrBert|UtrLm)"
)


def learned_position_offset(config: Any, model: nn.Module) -> int:
    """Positions consumed before the first token by a learned position embedding.

    RoBERTa/fairseq-style embeddings (``nn.Embedding`` named ``*position_embeddings`` with a
    ``padding_idx``) number positions from ``padding_idx + 1``; others from 0.

    >>> from biocoreset.testing import tiny_bert, tiny_esm
    >>> learned_position_offset(None, tiny_bert()[0]), learned_position_offset(None, tiny_esm()[0])
    (0, 2)
    """
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, nn.Embedding):
            return 0 if module.padding_idx is None else int(module.padding_idx) + 1
    return 0


def _esm_offset(config: Any, model: nn.Module) -> int:
    return int(getattr(config, "pad_token_id", 1) or 0) + 1


def _multimolecule_offset(config: Any, model: nn.Module) -> int:
    # multimolecule adds 1 to fairseq position ids ("a bug in the original implementation").
    offset = learned_position_offset(config, model)
    return offset + 1 if offset else 0


def _write_vocab_tokenizer(tokens: Sequence[str]) -> Any:
    from biocoreset.adapters.rnafm_model import RnaFmTokenizer

    with tempfile.TemporaryDirectory(prefix="biocoreset-vocab-") as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        tokenizer = RnaFmTokenizer(vocab_file=str(vocab))
    tokenizer.init_kwargs.pop("vocab_file", None)
    return tokenizer


def esm_protein_tokenizer() -> Any:
    """A per-character ``EsmTokenizer`` over :data:`ESM_PROTEIN_TOKENS` (ESM-1b / ESM-2).

    >>> tok = esm_protein_tokenizer()
    >>> tok("MKV")["input_ids"], tok.mask_token_id
    ([0, 20, 15, 7, 2], 32)
    """
    return _write_vocab_tokenizer(ESM_PROTEIN_TOKENS)


def _rnafm_tokenizer(config: Any) -> Any:
    from biocoreset.adapters.rnafm_model import rnafm_tokenizer

    return rnafm_tokenizer()


def _esm_tokenizer(config: Any) -> Any:
    if int(getattr(config, "vocab_size", 0)) != len(ESM_PROTEIN_TOKENS):
        return None
    return esm_protein_tokenizer()


def _model_type(config: Any) -> str:
    return str(getattr(config, "model_type", "") or "")


def _is_rnafm(config: Any) -> bool:
    return (
        _model_type(config) == "esm"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and int(getattr(config, "vocab_size", 0)) == 25
        and bool(getattr(config, "emb_layer_norm_before", False))
    )


def _is_multimolecule(config: Any) -> bool:
    if type(config).__module__.split(".")[0] == "multimolecule":
        return True
    if _model_type(config) in MULTIMOLECULE_MODEL_TYPES:
        return True
    return any(_MULTIMOLECULE_ARCH.match(a) for a in (getattr(config, "architectures", None) or []))


def _is_bert(config: Any) -> bool:
    if _model_type(config) in BERT_MODEL_TYPES:
        return True
    archs = getattr(config, "architectures", None) or []
    return any(
        re.match(r"^(Bert|Roberta|XLMRoberta|DistilBert|ModernBert|Electra)", a) for a in archs
    )


@attrs.frozen(kw_only=True)
class ModelFamily:
    """What the ``hf`` adapter knows about a family of masked LMs.

    Attributes:
        name: Family name (reported as ``adapter.family``).
        description: One line for docs and messages.
        matches: ``config -> bool``; whether a model's config belongs to the family.
        position_offset: ``(config, model) -> int``, positions consumed before the first token;
            the residue limit is ``max_position_embeddings - offset - special tokens``.
        default_tokenizer: ``config -> tokenizer | None`` used when the user gives none.
        group_rules: ``(regex, group)`` pairs tried (``re.search`` on the parameter name) before
            :func:`~biocoreset.adapters.base.default_parameter_groups`.
    """

    name: str
    description: str
    matches: Callable[[Any], bool]
    position_offset: Callable[[Any, nn.Module], int] = learned_position_offset
    default_tokenizer: Callable[[Any], Any] | None = None
    group_rules: tuple[tuple[str, str], ...] = ()

    def max_length(self, model: nn.Module, n_special: int) -> int | None:
        """Residue limit of ``model`` (``None`` when its config has no ``max_position_embeddings``).

        >>> from biocoreset.testing import tiny_esm
        >>> model = tiny_esm(max_positions=66)[0]
        >>> detect_family(model).max_length(model, 2)
        62
        """
        config = getattr(model, "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if not limit:
            return None
        return int(limit) - int(self.position_offset(config, model)) - int(n_special)

    def parameter_groups(self, names: Sequence[str]) -> dict[str, list[str]]:
        """Readable groups: :attr:`group_rules` first, then the default grouping.

        >>> GENERIC.parameter_groups(["bert.encoder.layer.0.attention.self.query.weight"])
        {'layer 0 attention': ['bert.encoder.layer.0.attention.self.query.weight']}
        """
        ruled: dict[str, str] = {}
        rest: list[str] = []
        for name in names:
            for pattern, group in self.group_rules:
                if re.search(pattern, name):
                    ruled[name] = group
                    break
            else:
                rest.append(name)
        default = {n: g for g, members in default_parameter_groups(rest).items() for n in members}
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(ruled.get(name) or default[name], []).append(name)
        return groups


_ESM_RULES = ((r"(^|\.)contact_head\.", "contact head"),)

RNA_FM = ModelFamily(
    name="rna-fm",
    description="RNA-FM (ESM-1b architecture, 25-token RNA alphabet) as EsmForMaskedLM",
    matches=_is_rnafm,
    position_offset=_esm_offset,
    default_tokenizer=_rnafm_tokenizer,
    group_rules=_ESM_RULES,
)
ESM_2 = ModelFamily(
    name="esm-2",
    description="ESM-2 style EsmForMaskedLM (rotary positions)",
    matches=lambda c: (
        _model_type(c) == "esm" and getattr(c, "position_embedding_type", "") == "rotary"
    ),
    position_offset=_esm_offset,
    default_tokenizer=_esm_tokenizer,
    group_rules=_ESM_RULES,
)
ESM_1B = ModelFamily(
    name="esm-1b",
    description="ESM-1b style EsmForMaskedLM (learned positions), e.g. Nucleotide Transformer",
    matches=lambda c: _model_type(c) == "esm",
    position_offset=_esm_offset,
    default_tokenizer=_esm_tokenizer,
    group_rules=_ESM_RULES,
)
MULTIMOLECULE = ModelFamily(
    name="multimolecule",
    description="multimolecule RNA/DNA/protein masked LMs (RNA-FM, RiNALMo, SpliceBERT, ...)",
    matches=_is_multimolecule,
    position_offset=_multimolecule_offset,
)
BERT = ModelFamily(
    name="bert",
    description="BERT-style encoders (BERT, RoBERTa, DNABERT, ModernBERT, ...)",
    matches=_is_bert,
    group_rules=((r"^head\.", "lm head"), (r"(^|\.)pooler\.", "pooler")),
)
GENERIC = ModelFamily(
    name="generic", description="any other transformers masked LM", matches=lambda c: True
)

BUILTIN_FAMILIES: tuple[ModelFamily, ...] = (RNA_FM, ESM_2, ESM_1B, MULTIMOLECULE, BERT, GENERIC)
"""The built-in families in detection order; ``generic`` (last) matches everything."""


def families() -> list[ModelFamily]:
    """The registered families in detection order (the built-ins, and plugin families before the
    family they name, by default ``generic``).

    >>> [f.name for f in families()][-2:]
    ['bert', 'generic']
    """
    from biocoreset.plugins import get_registry

    return list(get_registry().families())


def detect_family(model: nn.Module) -> ModelFamily:
    """The first family of :func:`families` whose ``matches`` accepts ``model.config`` (the
    ``generic`` family when none does).

    >>> from biocoreset.adapters.rnafm_model import build_rnafm
    >>> detect_family(build_rnafm("tiny")).name
    'rna-fm'
    """
    config = getattr(model, "config", None)
    for family in families():
        if config is None and family.name != "generic":
            continue
        if family.matches(config):
            return family
    return GENERIC
