"""Helpers for tests and plugin authors: tiny models, brute-force references and conformance
checks (as scikit-learn's ``check_estimator``).

* :func:`check_adapter`, :func:`check_curvature`, :func:`check_scorer`, :func:`check_selector` —
  what every component of a kind must pass; the numerical ones compare with brute force in float64
  (one sample at a time, ``torch.autograd.grad`` per sample) on a tiny model;
* :func:`tiny_adapter` (pure torch, float64), :func:`tiny_esm`, :func:`tiny_bert` and
  :func:`random_rna` for end-to-end tests.

>>> model, tokenizer = tiny_esm(seed=0)
>>> type(model).__name__
'EsmForMaskedLM'
"""

from biocoreset.testing.checks import check_adapter, check_protocols, check_scorer, check_selector
from biocoreset.testing.curvature import check_curvature
from biocoreset.testing.models import (
    RNA_LETTERS,
    TinyAdapter,
    TinyMaskedLM,
    random_rna,
    tiny_adapter,
    tiny_bert,
    tiny_esm,
)

__all__ = [
    "RNA_LETTERS",
    "TinyAdapter",
    "TinyMaskedLM",
    "check_adapter",
    "check_curvature",
    "check_protocols",
    "check_scorer",
    "check_selector",
    "random_rna",
    "tiny_adapter",
    "tiny_bert",
    "tiny_esm",
]
