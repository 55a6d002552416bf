"""Comparing two arms of a benchmark over their seeds: the gap, twice the pooled sd, Welch's t and
a 95% confidence interval of the gap.

The replication rounds call a difference real when the gap between two arms' seed means exceeds
twice their pooled sd, ``2·sqrt((s_a² + s_b²) / 2)``; Welch's t (unequal variances) and its 95%
confidence interval are reported beside that rule, not instead of it. With three seeds a side the
interval is wide: Welch's degrees of freedom are at most 4, so ``t_0.975`` is at least 2.78.

:func:`verdict` combines two outcomes as the third round pre-registered it: arm ``a`` **beats**
``b`` when the first (primary) outcome differs beyond the rule in ``a``'s favour and the second is
not worse beyond the rule; **worse** symmetrically; **mixed** when the two differ in opposite
directions; else **no difference**.

Example:
    >>> c = compare_arms([1.0, 1.2, 1.1], [1.5, 1.4, 1.6])
    >>> round(c.gap, 3), round(c.two_pooled_sd, 3), c.beyond, round(c.welch_t, 2)
    (-0.4, 0.2, True, -4.9)
    >>> verdict(c, compare_arms([0.8, 0.81, 0.79], [0.8, 0.82, 0.8]), first_higher_is_better=False)
    'beats'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from biocoreset.errors import InputError

__all__ = ["VERDICTS", "ArmComparison", "compare_arms", "verdict"]

VERDICTS = ("beats", "worse", "mixed", "no difference")
"""What :func:`verdict` can say of arm ``a`` against arm ``b``."""


@attrs.frozen(kw_only=True)
class ArmComparison:
    """Arm ``a`` against arm ``b`` over their seeds (gap = mean of ``a`` − mean of ``b``).

    Attributes:
        mean_a: Mean of ``a``.
        sd_a: Sample sd of ``a`` (``n - 1``).
        n_a: Seeds of ``a``.
        mean_b: Mean of ``b``.
        sd_b: Sample sd of ``b``.
        n_b: Seeds of ``b``.
        gap: ``mean_a - mean_b``.
        two_pooled_sd: ``2·sqrt((sd_a² + sd_b²) / 2)``.
        beyond: ``|gap| > two_pooled_sd``.
        welch_t: Welch's t of the gap (``nan`` when both sds are 0).
        welch_df: Welch–Satterthwaite degrees of freedom.
        ci_low: Lower end of the 95% interval of the gap (Welch).
        ci_high: Upper end.
    """

    mean_a: float
    sd_a: float
    n_a: int
    mean_b: float
    sd_b: float
    n_b: int
    gap: float
    two_pooled_sd: float
    beyond: bool
    welch_t: float
    welch_df: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON)."""
        return attrs.asdict(self)


def compare_arms(a: Sequence[float], b: Sequence[float]) -> ArmComparison:
    """Compare the seed values of two arms (see the module docs).

    Args:
        a: One value per seed of the first arm (at least 2).
        b: One value per seed of the second arm (at least 2).

    Raises:
        InputError: Fewer than two values on a side, or a value that is not finite.
    """
    from scipy import stats

    xs, ys = [float(v) for v in a], [float(v) for v in b]
    for name, vals in (("a", xs), ("b", ys)):
        if len(vals) < 2:
            raise InputError(
                f"arm {name} has {len(vals)} value(s); comparing needs at least 2 seeds."
            )
        if not all(math.isfinite(v) for v in vals):
            raise InputError(f"arm {name} has a value that is not finite: {vals}.")
    ma, mb = statistics.fmean(xs), statistics.fmean(ys)
    sa, sb = statistics.stdev(xs), statistics.stdev(ys)
    na, nb = len(xs), len(ys)
    gap = ma - mb
    two_pooled = 2.0 * math.sqrt((sa * sa + sb * sb) / 2.0)
    va, vb = sa * sa / na, sb * sb / nb
    se = math.sqrt(va + vb)
    if se > 0:
        t = gap / se
        df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
        half = float(stats.t.ppf(0.975, df)) * se
    else:
        t, df, half = float("nan"), float(na + nb - 2), 0.0
    return ArmComparison(
        mean_a=ma,
        sd_a=sa,
        n_a=na,
        mean_b=mb,
        sd_b=sb,
        n_b=nb,
        gap=gap,
        two_pooled_sd=two_pooled,
        beyond=abs(gap) > two_pooled,
        welch_t=t,
        welch_df=df,
        ci_low=gap - half,
        ci_high=gap + half,
    )


def verdict(
    first: ArmComparison,
    second: ArmComparison,
    *,
    first_higher_is_better: bool = True,
    second_higher_is_better: bool = True,
) -> str:
    """Arm ``a`` against arm ``b`` on two outcomes (see the module docs): one of :data:`VERDICTS`.

    Args:
        first: The comparison on the outcome that decides (Primary 1).
        second: The comparison that must not go the other way (Primary 2).
        first_higher_is_better: Whether a higher value of the first outcome is better (``False``
            for a loss).
        second_higher_is_better: The same for the second outcome.
    """

    def direction(c: ArmComparison, higher_is_better: bool) -> int:
        if not c.beyond:
            return 0
        return 1 if (c.gap > 0) == higher_is_better else -1

    d1 = direction(first, first_higher_is_better)
    d2 = direction(second, second_higher_is_better)
    if d1 == 1 and d2 >= 0:
        return "beats"
    if d1 == -1 and d2 <= 0:
        return "worse"
    if d1 != 0:
        return "mixed"
    return "no difference"
