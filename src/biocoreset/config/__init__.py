"""Configuration: the frozen configs of the Python API and everything that checks or reads them.

- :mod:`biocoreset.config.core`: ``ScoreConfig``, ``SelectConfig``, ``FinetuneConfig`` and the
  damping form (re-exported here, so ``from biocoreset.config import ScoreConfig`` works);
- :mod:`biocoreset.config.fields`: the validators and converters of every attrs config;
- :mod:`biocoreset.config.toml`: the one TOML reader (tables checked against attrs classes);
- :mod:`biocoreset.config.presets`: the named presets (``paper``, ``fast``, ...).

>>> from biocoreset.config import ScoreConfig
>>> ScoreConfig().curvature
'diagonal'
"""

from __future__ import annotations

from biocoreset.config.core import (
    DEFAULT_DAMPING,
    FinetuneConfig,
    MaskingConfig,
    ScoreConfig,
    SelectConfig,
    SubsetSpec,
    damping_options,
    parse_damping,
)

__all__ = [
    "DEFAULT_DAMPING",
    "FinetuneConfig",
    "MaskingConfig",
    "ScoreConfig",
    "SelectConfig",
    "SubsetSpec",
    "damping_options",
    "parse_damping",
]
