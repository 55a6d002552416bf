"""Conformance checks every component of a kind should pass (as scikit-learn's ``check_estimator``).

Each check is a top-level function of its kind's module, named for what it checks, that raises
:class:`AssertionError` saying what failed; import one to run it alone
(:mod:`~biocoreset.testing.adapter_conformance`, :mod:`~biocoreset.testing.scorer_conformance`,
:mod:`~biocoreset.testing.selector_conformance`). ``<kind>_checks`` yields the checks of a
component as named :class:`~biocoreset.testing.named.Check` objects (for one pytest id each, see
:func:`~biocoreset.testing.parametrize.parametrize_with_checks`): every component's, then one per
optional capability it has. ``check_<kind>`` runs them all in one call. The numerical checks run
on a tiny float64 model (:func:`~biocoreset.testing.models.tiny_adapter`) and compare with brute
force: one sample at a time, ``torch.autograd.grad`` per sample
(:mod:`biocoreset.testing.reference`).

Example:
    >>> from biocoreset.selectors.topk import TopKSelector
    >>> check_selector(TopKSelector())
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from biocoreset.protocols import CurvatureEstimator, ModelAdapter, Selector
from biocoreset.testing.adapter_conformance import ADAPTER_CHECKS, AdapterCase, capability_checks
from biocoreset.testing.kit import checks_of
from biocoreset.testing.named import Check, component_name
from biocoreset.testing.scorer_conformance import (
    SCORER_CHECKS,
    Reference,
    ScorerRun,
    reference_checks,
)
from biocoreset.testing.selector_conformance import SELECTOR_CHECKS

__all__ = [
    "adapter_checks",
    "check_adapter",
    "check_protocols",
    "check_scorer",
    "check_selector",
    "scorer_checks",
    "selector_checks",
]


def selector_checks(
    selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0
) -> Iterator[Check]:
    """The named checks of :func:`check_selector`, one :class:`~biocoreset.testing.named.Check`
    each (:data:`~biocoreset.testing.selector_conformance.SELECTOR_CHECKS`: ``protocol``,
    ``budget_indices``, ``seed_reproducible``)."""
    return checks_of(selector, SELECTOR_CHECKS, selector, n=n, budget=budget, seed=seed)


def check_selector(selector: Selector, *, n: int = 200, budget: int = 20, seed: int = 0) -> None:
    """Conformance checks every selector should pass (every check of :func:`selector_checks`).

    Checks the protocol, that exactly ``budget`` distinct in-range int64 indices come back, and that
    the same seed gives the same selection.

    Raises:
        AssertionError: A check failed (the message says which).
    """
    for check in selector_checks(selector, n=n, budget=budget, seed=seed):
        check()


def adapter_checks(
    adapter: ModelAdapter,
    *,
    records: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    engine: str = "auto",
) -> Iterator[Check]:
    """The named checks of :func:`check_adapter`, one :class:`~biocoreset.testing.named.Check`
    each: every adapter's (:data:`~biocoreset.testing.adapter_conformance.ADAPTER_CHECKS`:
    ``protocol``, ``parameter_groups``, ``scored_parameters``, ``collate_deterministic``,
    ``labelled_positions``, ``masking_per_record``, ``loss_batch_separable``,
    ``gradients_match_brute_force``), then those of the optional capabilities it has
    (:func:`~biocoreset.testing.adapter_conformance.capability_checks`); the arguments are
    :func:`check_adapter`'s."""
    case = AdapterCase(records=records, seed=seed, rtol=rtol, engine=engine)
    chosen = [*ADAPTER_CHECKS, *capability_checks(adapter)]
    return checks_of(adapter, chosen, adapter, case)


def check_adapter(
    adapter: ModelAdapter,
    *,
    records: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    engine: str = "auto",
) -> None:
    """Conformance checks every adapter should pass (every check of :func:`adapter_checks`).

    * the :class:`~biocoreset.protocols.ModelAdapter` protocol; parameter groups are disjoint and
      name trainable parameters; scored parameters are trainable;
    * masking is deterministic: the same records and seed give the same batch, and each record's
      row (tokens and labels) does not depend on the order or company of the other records; every
      row has at least one labelled position;
    * ``per_sample_loss`` is batch-separable: each sample's loss equals its loss in a batch of one;
    * the per-sample gradients of the scored parameters from the gradient engine equal brute force
      (one ``torch.autograd.grad`` per record, in a batch of its own);
    * by capability: its own ``probe_batch()`` runs through the hook engine (gradients equal brute
      force on it); a composition-free adapter's losses do not change beside a long companion;
      a record over ``max_length`` is refused or cut as ``long_policy`` and ``truncation`` say;
      ``encode()`` gives the tokens ``collate()`` masks.

    Args:
        adapter: The adapter (a float64 model makes the tolerance ``1e-6``; else ``1e-3``).
        records: ``(id, sequence)`` records it accepts (default: random RNA, 4–14 letters).
        seed: Masking seed.
        rtol: Relative tolerance (default from the model's dtype).
        engine: Gradient engine (``"auto"``, ``"hooks"`` or ``"loop"``).

    Raises:
        AssertionError: A check failed (the message says which).

    >>> from biocoreset.testing import tiny_adapter
    >>> check_adapter(tiny_adapter())
    """
    for check in adapter_checks(adapter, records=records, seed=seed, rtol=rtol, engine=engine):
        check()


def scorer_checks(
    scorer: Any,
    *,
    curvature: CurvatureEstimator | None = None,
    reference: Reference | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> Iterator[Check]:
    """The named checks of :func:`check_scorer`, one :class:`~biocoreset.testing.named.Check`
    each (:data:`~biocoreset.testing.scorer_conformance.SCORER_CHECKS`: ``protocol``,
    ``scores_shape``, ``losses_match_brute_force``, ``batch_independent``; then
    ``scores_match_reference`` when there is a reference), all on one
    :class:`~biocoreset.testing.scorer_conformance.ScorerRun`; the arguments are
    :func:`check_scorer`'s."""

    @functools.cache
    def run() -> ScorerRun:
        return ScorerRun.build(
            scorer, curvature=curvature, reference=reference, seed=seed, rtol=rtol
        )

    def on_the_run(check: Callable[[ScorerRun], None]) -> Callable[[], None]:
        return lambda: check(run())

    prefix = component_name(scorer)
    for check in [*SCORER_CHECKS, *reference_checks(scorer, reference)]:
        yield Check(f"{prefix}-{check.__name__}", on_the_run(check))


def check_scorer(
    scorer: Any,
    *,
    curvature: CurvatureEstimator | None = None,
    reference: Reference | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
) -> None:
    """Conformance checks every scorer should pass, on the tiny float64 model (every check of
    :func:`scorer_checks`).

    * the :class:`~biocoreset.protocols.Scorer` protocol (a factory must declare its options);
    * ``score_batch`` returns ``[B]`` finite float64 scores and the brute-force per-sample losses;
    * a record's score does not depend on the other records in its batch or their order;
    * the scores equal the scorer's brute-force reference: ``reference(brute_force, curvature)``
      when given, else the scorer's own ``reference_scores`` (the built-ins': ``‖g‖``
      (``grad-norm``), the loss (``loss``), ``Σ_blocks gᵀ K g`` with ``K`` the matrix the fitted
      curvature applies (``self-influence``)).

    Args:
        scorer: The scorer, or its factory (called without options).
        curvature: Curvature for a scorer that needs one (default: the diagonal Fisher), fitted here.
        reference: ``(BruteForce of the scored records, fitted curvature) -> [N] scores``.
        seed: Seed of the records and the masking.
        rtol: Relative tolerance.

    Raises:
        AssertionError: A check failed (the message says which).

    >>> from biocoreset.scorers.self_influence import SelfInfluenceScorer
    >>> check_scorer(SelfInfluenceScorer)
    """
    for check in scorer_checks(
        scorer, curvature=curvature, reference=reference, seed=seed, rtol=rtol
    ):
        check()


def check_protocols(obj: object) -> list[str]:
    """Names of the protocols ``obj`` satisfies, each kind's optional capabilities after it (for
    quick diagnostics).

    >>> from biocoreset.selectors.cci import CCISelector
    >>> check_protocols(CCISelector())
    ['Selector', 'OrientedSelector', 'PlanningSelector']
    """
    from biocoreset import protocols

    kinds = {
        "ModelAdapter": ("SupportsValidation", "SupportsEncode", "SupportsProbe"),
        "CurvatureEstimator": ("MultiPassCurvature", "SavableCurvature"),
        "Scorer": (),
        "Selector": ("OrientedSelector", "PlanningSelector", "IdentifiedSelector"),
        "Engine": (),
    }
    out = []
    for kind, capabilities in kinds.items():
        if isinstance(obj, getattr(protocols, kind)):
            out.append(kind)
            out += [c for c in capabilities if isinstance(obj, getattr(protocols, c))]
    return out
