"""Length control for selection: ``select(..., debias="length")``.

Self-influence is mostly sequence length on real corpora (short sequences have large per-token
gradients). With ``debias="length"`` the selector ranks (Top-I) or stratifies (CCI) the
*length-conditional z-score* of each log score instead of the score itself: each sequence is
compared only with sequences of similar length (:func:`biocoreset.stats.length_control`). The fit
is recorded with the selection. The default, ``None``, is the paper's.

Example:
    >>> import numpy as np
    >>> L = np.arange(10, 510)
    >>> z, fit = debias_values(1e3 / L, L, negated=False)
    >>> fit["spearman_length"], abs(fit["spearman_length_after"]) < 0.2
    (-1.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biocoreset.errors import ConfigError, InputError, did_you_mean
from biocoreset.stats import length_control

__all__ = ["DEBIAS", "debias_values"]

DEBIAS = ("length",)
"""Length controls ``select(..., debias=...)`` accepts (``None``: none, the paper's default)."""


def check_debias(debias: Any) -> str | None:
    """Validate a ``debias`` option (``None`` or one of :data:`DEBIAS`)."""
    if debias is None or debias in DEBIAS:
        return debias
    raise ConfigError(
        f"debias must be None or one of {', '.join(map(repr, DEBIAS))}, got {debias!r}."
        f"{did_you_mean(str(debias), DEBIAS)}"
    )


def debias_values(
    values: np.ndarray, lengths: np.ndarray, *, negated: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """The values to select on with ``debias="length"``, oriented higher = more influential, and
    the fit's summary.

    Args:
        values: Stored scores.
        lengths: Residues per sequence.
        negated: Whether ``values`` are ``-I(z)``.

    Raises:
        InputError: ``lengths`` does not match ``values``.
    """
    lengths = np.asarray(lengths)
    if lengths.shape != np.shape(values):
        raise InputError(
            f"debias='length' needs one length per score: got {lengths.shape[0] if lengths.ndim else 0} "
            f"lengths for {np.size(values)} scores."
        )
    influence = -np.asarray(values, dtype=np.float64) if negated else np.asarray(values, np.float64)
    control = length_control(influence, lengths)
    return control.z, control.summary()
