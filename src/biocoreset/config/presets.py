"""Presets: named bundles of fine-tune, score, select and adapter settings.

``default`` follows the paper's text (``docs/design.md``). ``stable`` is ``default`` scored on the
LM head only with ``mask_draws=3``: the setting of the measured stability frontier that ranks most
stably at about the cost of one all-parameter draw (``docs/trust.md``, "for the compute you have";
``benchmarks/bench_stability_frontier.py``). ``paper-compat`` reproduces the choices
of the released bio-coreset code (commit 5b05de4, ``coreset/get_inf.py``, ``influence.py``,
``model_override.py``, ``get_coreset_index.py``), verified by running that code on the same model
and inputs (``benchmarks/paper_compat_released.py``), so users can match published coresets:

==========================  ======================================  ================================================
setting                     ``default`` (the paper's method)        ``paper-compat`` (released code)
==========================  ======================================  ================================================
scored parameters           all trainable                           ``lm_head.dense.weight`` only
per-sample loss             masked LM, 15% (BERT 80/10/10), mean    unmasked reconstruction (``loss_mode``), every
                            over the masked positions               position of the 1,024-token row a target
attention                   padding masked                          no padding mask (``attend_to_padding``)
row width                   the batch's longest row                 every row padded to 1,024 (``pad_to``)
truncation                  ``<cls>`` + 1,022 residues + ``<eos>``  the first 1,024 tokens (``truncation=
                                                                    "first-tokens"``): ``<cls>`` + 1,023 residues
Fisher fitted on            ``D_sub``                               the scored set itself (``fit_on="all"``)
damping λ                   0.1 × mean Fisher entry                 1e-8 absolute
stored score                ``I(z)``                                ``-I(z)`` (``negate``)
Top-I                       the highest ``I(z)``                    the highest ``I(z)`` = the lowest stored values,
                                                                    :func:`numpy.argsort` order (``ties="numpy"``)
CCI β cut                   the 5% most influential                 the 10% most influential = the lowest stored
CCI strata / edges          50, [min, max]                          50, [min, max·1.0001) in the stored values
                                                                    (``edges="released"``); unstable strata order
                                                                    (``ties="numpy"``); ``RandomState(42)`` drawn in
                                                                    bin order (``rng="legacy"``)
seeds                       0                                       42
fine-tune (A.5)             1 epoch, AdamW 1e-5, wd 0.01, warm-up   same recipe (masked LM), seed 42
                            50, batch 16, 15% masking, seed 0
==========================  ======================================  ================================================

Each released choice is a named option (adapter options, :class:`~biocoreset.config.ScoreConfig`
fields, selector options), so any single one can be switched back. Both presets select from the most
influential end: the selectors' directions (``topk``'s ``largest``, ``cci``'s ``cut``) default to
``auto``, which reads the score file's ``negated`` flag. (Earlier, the paper-compat preset took the
*largest* stored values, i.e. the least influential sequences; see the CHANGELOG.)

The released code reads sequences as they are: it converts no ``T`` to ``U`` and maps lower-case or
unknown letters to ``<unk>``. biocoreset's RNA-FM adapter cleans sequences first (upper case,
``T``→``U``), so the two agree exactly on upper-case ``ACGU``/IUPAC input, the Rfam and RNAcentral
case.

Example:
    >>> get_preset("paper-compat").score.parameters
    ('lm_head.dense.weight',)
    >>> get_preset("paper-compat").options_for("cci")["edges"]
    'released'
    >>> get_preset("default").options_for("topk")
    {}
"""

from __future__ import annotations

from typing import Any

import attrs

from biocoreset.config import FinetuneConfig, ScoreConfig, SelectConfig
from biocoreset.errors import ConfigError, did_you_mean

__all__ = ["PRESETS", "Preset", "get_preset"]


@attrs.frozen(kw_only=True)
class Preset:
    """A named bundle of settings.

    Attributes:
        name: Preset name.
        description: One line.
        finetune: Fine-tuning configuration.
        score: Scoring configuration.
        select: Selection configuration (default method and seed).
        selector_options: Options per selector name (``"cci"``, ``"topk"``...).
        adapter_options: Options for the adapter; the loss (``loss_mode``) is set here, since the
            adapter owns it.
    """

    name: str
    description: str
    finetune: FinetuneConfig
    score: ScoreConfig
    select: SelectConfig
    selector_options: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    adapter_options: dict[str, Any] = attrs.field(factory=dict)

    def options_for(self, method: str) -> dict[str, Any]:
        """The preset's options for selector ``method`` (a copy; empty for other selectors)."""
        return dict(self.selector_options.get(method, {}))


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        description="the paper's method as written (``docs/design.md``): masked loss, all parameters, Fisher on D_sub",
        finetune=FinetuneConfig(),
        score=ScoreConfig(),
        select=SelectConfig(method="cci", seed=0),
        selector_options={"cci": {"beta": 0.05, "strata": 50}},
    ),
    "paper-compat": Preset(
        name="paper-compat",
        description="the released bio-coreset code: lm_head.dense.weight, unmasked loss over all "
        "1,024 positions without a padding mask, Fisher on the scored set, eps 1e-8, negated "
        "scores, released Top-I/CCI (beta 0.1, legacy RNG), seed 42",
        finetune=FinetuneConfig(seed=42, group_by_length=False),
        score=ScoreConfig(
            parameters=("lm_head.dense.weight",),
            fit_on="all",
            damping=1e-8,
            negate=True,
            seed=42,
        ),
        select=SelectConfig(method="cci", seed=42),
        selector_options={
            "cci": {
                "beta": 0.1,
                "strata": 50,
                "edges": "released",
                "ties": "numpy",
                "rng": "legacy",
            },
            "topk": {"ties": "numpy"},
        },
        adapter_options={
            "loss_mode": "paper-compat",
            "attend_to_padding": True,
            "pad_to": 1024,
            "truncation": "first-tokens",
        },
    ),
    "stable": Preset(
        name="stable",
        description="the paper's method scored on the LM head only with 3 mask draws: at about "
        "the cost of one all-parameter draw, the most stable ranking on both models measured "
        "(docs/trust.md, for the compute you have)",
        finetune=FinetuneConfig(),
        score=ScoreConfig(parameters=("lm head",), mask_draws=3),
        select=SelectConfig(method="cci", seed=0),
        selector_options={"cci": {"beta": 0.05, "strata": 50}},
    ),
}
"""The built-in presets by name."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: Unknown name (the message lists the presets).
    """
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}.{did_you_mean(name, PRESETS)} Choices: {', '.join(sorted(PRESETS))}."
        )
    return PRESETS[name]
