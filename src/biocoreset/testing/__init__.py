"""Helpers for tests and plugin authors: tiny models, brute-force references and conformance
checks (as scikit-learn's ``check_estimator``).

* :func:`check_adapter`, :func:`check_curvature`, :func:`check_scorer`, :func:`check_selector` —
  what every component of a kind must pass; the numerical ones compare with brute force in float64
  (one sample at a time, ``torch.autograd.grad`` per sample) on a tiny model;
* :func:`adapter_checks`, :func:`curvature_checks`, :func:`scorer_checks`, :func:`selector_checks`
  — the same checks one by one, each a named :class:`Check`, and :func:`parametrize_with_checks`
  to give each its own pytest id (as scikit-learn's);
* :func:`tiny_adapter` (pure torch, float64), :func:`tiny_esm`, :func:`tiny_bert` and
  :func:`random_rna` for end-to-end tests.

>>> model, tokenizer = tiny_esm(seed=0)
>>> type(model).__name__
'EsmForMaskedLM'
"""

from biocoreset.testing.checks import (
    adapter_checks,
    check_adapter,
    check_protocols,
    check_scorer,
    check_selector,
    scorer_checks,
    selector_checks,
)
from biocoreset.testing.curvature import check_curvature, curvature_checks
from biocoreset.testing.models import (
    RNA_LETTERS,
    TinyAdapter,
    TinyMaskedLM,
    random_rna,
    tiny_adapter,
    tiny_bert,
    tiny_esm,
)
from biocoreset.testing.named import Check
from biocoreset.testing.parametrize import checks_for, parametrize_with_checks

__all__ = [
    "RNA_LETTERS",
    "Check",
    "TinyAdapter",
    "TinyMaskedLM",
    "adapter_checks",
    "check_adapter",
    "check_curvature",
    "check_protocols",
    "check_scorer",
    "check_selector",
    "checks_for",
    "curvature_checks",
    "parametrize_with_checks",
    "random_rna",
    "scorer_checks",
    "selector_checks",
    "tiny_adapter",
    "tiny_bert",
    "tiny_esm",
]
