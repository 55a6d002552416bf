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

from biocoreset.config import core
from biocoreset.config.core import DEFAULT_DAMPING as DEFAULT_DAMPING
from biocoreset.config.core import ENGINES as ENGINES
from biocoreset.config.core import MASK_REDUCE as MASK_REDUCE
from biocoreset.config.core import FinetuneConfig as FinetuneConfig
from biocoreset.config.core import MaskingConfig as MaskingConfig
from biocoreset.config.core import ScoreConfig as ScoreConfig
from biocoreset.config.core import SelectConfig as SelectConfig
from biocoreset.config.core import SubsetSpec as SubsetSpec
from biocoreset.config.core import damping_options as damping_options
from biocoreset.config.core import invalid_field as invalid_field
from biocoreset.config.core import parse_damping as parse_damping
from biocoreset.config.core import replacement_field as replacement_field
from biocoreset.config.core import subset_field as subset_field
from biocoreset.config.core import subset_seed_field as subset_seed_field

__all__ = list(core.__all__)
