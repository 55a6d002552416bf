"""Warnings about a run whose result may not mean much, each naming its fix.

:func:`biocoreset.train.finetune.finetune` and :func:`biocoreset.score` check what they just did and
warn (:class:`~biocoreset.errors.QualityWarning`, a :class:`~biocoreset.errors.BioCoresetWarning`)
when:

* the fine-tune took fewer optimizer steps than its warm-up (:func:`finetune_advice`): the learning
  rate never reached its set value and the model barely moved;
* ``D_sub`` holds fewer than :data:`SMALL_SUBSET` sequences (:func:`subset_advice`);
* more than :data:`ZERO_FISHER` of the diagonal Fisher's entries are zero after the fit
  (:func:`fit_advice`): λ alone sets their weight;
* the scores follow sequence length, ``|Spearman ρ| >`` :data:`LENGTH_RHO` (:func:`length_advice`).

:func:`compute_advice` names the setting (parameter scope and mask draws) that was measured most
stable for the compute of one all-parameter draw (``docs/trust.md``, "for the compute you have");
``biocoreset diagnose`` adds it to its stability warning.

Only the main process warns (once per run under ``torchrun``). The ``biocoreset`` command prints each
warning once, as ``biocoreset COMMAND: warning: ...``; from Python they are ordinary warnings
(silence them with ``warnings.simplefilter("ignore", QualityWarning)``).

>>> subset_advice(14)[0].split(":")[0]
'D_sub holds only 14 sequences (fewer than 100)'
>>> length_advice(np.arange(50.0), np.arange(50.0))[0].split(":")[0]
'the scores follow sequence length (Spearman ρ = 1.00)'
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from biocoreset.errors import QualityWarning
from biocoreset.stats import spearman

__all__ = [
    "FOR_HALF_DRAW",
    "FOR_ONE_DRAW",
    "LENGTH_RHO",
    "MIN_LENGTH_ROWS",
    "SMALL_SUBSET",
    "ZERO_FISHER",
    "MeasuredSetting",
    "compute_advice",
    "emit",
    "finetune_advice",
    "fit_advice",
    "length_advice",
    "score_file_advice",
    "subset_advice",
]

SMALL_SUBSET = 100
"""Fewest ``D_sub`` sequences without a warning."""

ZERO_FISHER = 0.10
"""Largest share of zero diagonal-Fisher entries without a warning."""

LENGTH_RHO = 0.5
"""Largest ``|Spearman ρ(score, length)|`` without a warning."""

MIN_LENGTH_ROWS = 30
"""Fewest scored sequences for the length check (below it ρ is too noisy to warn on)."""


@attrs.frozen(kw_only=True)
class MeasuredSetting:
    """A parameter scope and number of mask draws from the measured frontier (``docs/trust.md``).

    Attributes:
        parameters: The scope (``--parameters``), as spelled on the command line.
        mask_draws: ``K`` (``--mask-draws``).
        cost: Measured compute, as a multiple of the all-parameter one-draw score.
        rho: Two-seed Spearman ρ measured with it.
        paper_rho: Two-seed Spearman ρ of the paper's score (all parameters, one draw) in the same
            measurement.
        model: The model it was measured on.
    """

    parameters: tuple[str, ...]
    mask_draws: int
    cost: float
    rho: float
    paper_rho: float
    model: str

    @property
    def flags(self) -> str:
        """The command-line options, quoted for a POSIX shell.

        >>> FOR_ONE_DRAW[0].flags.startswith("--parameters ")
        True
        """
        import shlex

        scope = " ".join(shlex.quote(p) for p in self.parameters)
        return f"--parameters {scope} --mask-draws {self.mask_draws}"


_RNA = "the RNA model of docs/trust.md"

FOR_ONE_DRAW: tuple[MeasuredSetting, ...] = (
    MeasuredSetting(
        parameters=("lm head",),
        mask_draws=3,
        cost=0.87,
        rho=0.59,
        paper_rho=0.44,
        model="AntiBERTy",
    ),
    MeasuredSetting(
        parameters=("lm head",), mask_draws=3, cost=0.95, rho=0.63, paper_rho=0.23, model=_RNA
    ),
)
"""Per measured model, the most stable setting at no more than the compute of one all-parameter
draw (``benchmarks/results/stability_frontier_{antiberty,rna}.json``)."""

FOR_HALF_DRAW: tuple[MeasuredSetting, ...] = (
    MeasuredSetting(
        parameters=("last:2", "lm head"),
        mask_draws=1,
        cost=0.49,
        rho=0.39,
        paper_rho=0.44,
        model="AntiBERTy",
    ),
    MeasuredSetting(
        parameters=("lm head",), mask_draws=1, cost=0.32, rho=0.39, paper_rho=0.23, model=_RNA
    ),
)
"""Per measured model, the most stable setting at no more than half that compute (same files)."""


_PRESET_NOTE = (
    " (the same setting on both: `--preset stable`)"
    if len({(b.parameters, b.mask_draws) for b in FOR_ONE_DRAW}) == 1
    else ""
)


def compute_advice(meta: Mapping[str, Any]) -> list[str]:
    """The measured settings for the compute of one all-parameter draw (per model), unless the
    run used one of them (or its scope with at least as many draws) already.

    >>> compute_advice({"mask_draws": 1})[0].split(":")[0]
    'for the compute of one all-parameter draw, the most stable settings measured'
    >>> compute_advice({"scored_parameter_patterns": list(FOR_ONE_DRAW[0].parameters),
    ...                 "mask_draws": FOR_ONE_DRAW[0].mask_draws})
    []
    """
    patterns = tuple(meta.get("scored_parameter_patterns") or ())
    draws = int(meta.get("mask_draws") or 1)
    if any(patterns == b.parameters and draws >= b.mask_draws for b in FOR_ONE_DRAW):
        return []
    one = "; ".join(
        f"on {b.model}, `{b.flags}` (two runs with different seeds agreed to Spearman ρ "
        f"{b.rho:.2f} against {b.paper_rho:.2f} for the paper's one-draw score, at {b.cost:.2f}× "
        "its compute)"
        for b in FOR_ONE_DRAW
    )
    half = "; ".join(
        f"on {h.model}, `{h.flags}` (ρ {h.rho:.2f} at {h.cost:.2f}×)" for h in FOR_HALF_DRAW
    )
    return [
        f"for the compute of one all-parameter draw, the most stable settings measured: {one}"
        f"{_PRESET_NOTE}. At half that compute: {half}. See docs/trust.md, for the compute you "
        "have."
    ]


_SAMPLE = 1_000_000  # the length check of a score file reads at most about this many rows


def subset_advice(size: int) -> list[str]:
    """The warning for a ``D_sub`` of ``size`` sequences, if it is too small."""
    if size >= SMALL_SUBSET:
        return []
    return [
        f"D_sub holds only {size} sequences (fewer than {SMALL_SUBSET}): the fine-tune and the "
        "Fisher rest on very few, so the scores are noisy. Use a larger D_sub (`--subset 256` or "
        "more; the default is 1% of the corpus, at least 256)."
    ]


def finetune_advice(result: Any) -> list[str]:
    """Warnings about a :class:`~biocoreset.train.finetune.FinetuneResult`: a small ``D_sub`` and
    fewer steps than the warm-up."""
    if not result.enabled:
        return []
    out = subset_advice(result.subset_size)
    warm = int(result.config.get("warmup_steps") or 0)
    if result.steps < warm:
        before, after = result.before, result.after
        if before is not None and after is not None:
            moved = f"the D_sub loss went from {before.mean_loss:.4f} to {after.mean_loss:.4f}"
        elif result.losses:
            moved = f"the training loss went from {result.losses[0]:.4f} to {result.losses[-1]:.4f}"
        else:
            moved = "no step was taken"
        out.append(
            f"the fine-tune ran {result.steps} steps, fewer than its {warm} warm-up steps: its "
            f"learning rate never reached the set value and the model barely moved ({moved}), so "
            "Assumption 1 may not hold. Give it more steps (`--epochs`, or a larger D_sub with "
            "`--subset`) or a shorter warm-up (`--warmup-steps`)."
        )
    return out


def fit_advice(meta: Mapping[str, Any]) -> list[str]:
    """Warnings about the curvature fit recorded in a score file's metadata: a small ``D_sub`` and
    many zero Fisher entries."""
    out: list[str] = []
    fitted = meta.get("curvature") not in (None, "identity")
    size = meta.get("subset_size")
    if fitted and meta.get("fit_on", "subset") == "subset" and isinstance(size, int):
        out += subset_advice(size)
    info = meta.get("curvature_info") or {}
    zeros = info.get("fisher_zero_entries", meta.get("fisher_zero_entries"))
    params = meta.get("num_scored_parameters")
    if (
        isinstance(zeros, int)
        and isinstance(params, int)
        and params
        and zeros / params > ZERO_FISHER
    ):
        out.append(
            f"{zeros / params:.0%} of the Fisher entries are zero after the fit (no gradient on "
            "D_sub), so λ alone sets their weight. Harmless for rows no sequence reaches (positions "
            "beyond the longest sequence or `max_length`, letters absent from the corpus); "
            "otherwise enlarge D_sub (`--subset`) or leave those parameters out (`--parameters`)."
        )
    return out


def length_advice(scores: np.ndarray, length: np.ndarray) -> list[str]:
    """The warning when the scores follow sequence length (``|ρ| >`` :data:`LENGTH_RHO`)."""
    scores, length = np.asarray(scores, np.float64), np.asarray(length, np.float64)
    keep = np.isfinite(scores)
    if int(keep.sum()) < MIN_LENGTH_ROWS:
        return []
    rho = spearman(scores[keep], length[keep])
    if not math.isfinite(rho) or abs(rho) <= LENGTH_RHO:
        return []
    return [
        f"the scores follow sequence length (Spearman ρ = {rho:.2f}): Top-I and CCI would mostly "
        "choose by length. Look at `biocoreset diagnose` (score against length) and select with "
        "`biocoreset select --debias length`."
    ]


def score_file_advice(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> list[str]:
    """:func:`fit_advice` and :func:`length_advice` for a score file (its length check reads an
    evenly spaced sample of at most about a million rows)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    step = max(1, pf.metadata.num_rows // _SAMPLE)
    scores, length = [], []
    seen = 0
    for batch in pf.iter_batches(columns=["score", "length"], batch_size=65536):
        take = np.arange((-seen) % step, batch.num_rows, step)
        scores.append(batch.column(0).to_numpy(zero_copy_only=False)[take])
        length.append(batch.column(1).to_numpy(zero_copy_only=False)[take])
        seen += batch.num_rows
    if not scores:
        return fit_advice(meta)
    return fit_advice(meta) + length_advice(np.concatenate(scores), np.concatenate(length))


def emit(messages: Iterable[str], *, stacklevel: int = 3) -> None:
    """Warn once per message (:class:`~biocoreset.errors.QualityWarning`), on the main process."""
    from biocoreset.runtime.distributed import current

    if not current().is_main:
        return
    for message in dict.fromkeys(messages):
        warnings.warn(message, QualityWarning, stacklevel=stacklevel)
