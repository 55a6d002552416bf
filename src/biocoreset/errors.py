"""Exceptions raised by biocoreset.

Every error derives from :class:`BioCoresetError` and also from the built-in exception that fits,
so ``except ValueError`` keeps working for callers that do not know this library.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BioCoresetError",
    "BioCoresetWarning",
    "BudgetError",
    "ConfigError",
    "CurvatureError",
    "InputError",
    "OutputExistsError",
    "OutputPathError",
    "PluginError",
    "QualityWarning",
    "UnknownComponentError",
    "did_you_mean",
]


class BioCoresetError(Exception):
    """Base class of every error raised by biocoreset."""


class ConfigError(BioCoresetError, ValueError):
    """A configuration value or option is invalid (the message names the option)."""


class InputError(BioCoresetError, ValueError):
    """Input data is invalid (the message names the record, field and position)."""


class BudgetError(BioCoresetError, ValueError):
    """A selection budget cannot be met."""


class CurvatureError(BioCoresetError, ArithmeticError):
    """A curvature estimate cannot be inverted or applied (e.g. zero Fisher entry with λ = 0)."""


class PluginError(BioCoresetError, RuntimeError):
    """A plugin failed to load, register or conflicts with another."""


class UnknownComponentError(PluginError, LookupError):
    """A component name is not registered; the message lists the choices."""


class OutputExistsError(BioCoresetError, FileExistsError):
    """An output path exists and ``force`` was not given."""


class OutputPathError(BioCoresetError, OSError):
    """An output path cannot be created or written (a parent is a file, or is not writable)."""


class BioCoresetWarning(UserWarning):
    """Something worked but deserves the user's attention (the message says what to do)."""


class QualityWarning(BioCoresetWarning):
    """A run finished but its result may not mean much (too small a ``D_sub``, a fine-tune shorter
    than its warm-up, many zero Fisher entries, scores that follow length); see
    :mod:`biocoreset.diagnose.advice`."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` hint, or an empty string.

    >>> did_you_mean("dagonal", ["diagonal", "identity"])
    " Did you mean 'diagonal'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
