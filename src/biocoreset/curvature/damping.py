"""Damping λ: absolute, or relative to the mean curvature; always recorded as an absolute number."""

from __future__ import annotations

import math

from biocoreset.errors import ConfigError

__all__ = ["DEFAULT_RELATIVE_DAMPING", "resolve_damping"]

DEFAULT_RELATIVE_DAMPING = 0.1
"""Default λ = 0.1 × mean curvature (the mean diagonal Fisher entry, or mean K-FAC eigenvalue)."""


def resolve_damping(
    damping: float | None, damping_relative: float | None, mean_curvature: float
) -> float:
    """Absolute λ from the options.

    Args:
        damping: Absolute λ (wins when given).
        damping_relative: λ as a multiple of ``mean_curvature`` (default 0.1).
        mean_curvature: Mean diagonal / eigenvalue of the fitted curvature.

    >>> resolve_damping(None, 0.1, 2.0)
    0.2
    >>> resolve_damping(1e-3, 0.1, 2.0)
    0.001
    """
    if damping is not None:
        lam = float(damping)
        if not math.isfinite(lam) or lam < 0:
            raise ConfigError(f"damping must be a finite number >= 0, got {damping!r}.")
        return lam
    rel = DEFAULT_RELATIVE_DAMPING if damping_relative is None else float(damping_relative)
    if not math.isfinite(rel) or rel < 0:
        raise ConfigError(
            f"damping_relative must be a finite number >= 0, got {damping_relative!r}."
        )
    return rel * float(mean_curvature)


def check_damping_options(damping: float | None, damping_relative: float | None) -> None:
    """Validate the options early (before any fitting)."""
    resolve_damping(damping, damping_relative, 1.0)
