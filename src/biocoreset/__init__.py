"""biocoreset: influence-guided coreset selection for pretraining biological foundation models.

>>> from biocoreset import score, select
"""

from biocoreset._version import __version__
from biocoreset.api import Selection, score, select
from biocoreset.config import MaskingConfig, ScoreConfig, SelectConfig
from biocoreset.plugins.hookspecs import hookimpl
from biocoreset.store.result import ScoreResult, load_scores

__all__ = [
    "MaskingConfig",
    "ScoreConfig",
    "ScoreResult",
    "SelectConfig",
    "Selection",
    "__version__",
    "hookimpl",
    "load_scores",
    "score",
    "select",
]
