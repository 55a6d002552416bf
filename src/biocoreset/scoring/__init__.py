"""Scoring, phase by phase (the engine room behind :func:`biocoreset.score`).

================  ===========================================================================
module            what it owns
================  ===========================================================================
``components``    keyword options → :class:`~biocoreset.config.ScoreConfig`; adapter, scorer and
                  curvature resolved by name
``index``         the index pass: validate, count, digest and hash every record
``subset``        ``D_sub`` drawn as a seeded function of the ids (order- and split-free)
``streaming``     validated rows, the rows of a subset, batches over ranks, shard sizes
``fit``           the curvature fit on ``D_sub``
``fingerprint``   what determines the scores (resume refuses a change), the model's hash
``metadata``      :class:`~biocoreset.scoring.metadata.ScoreMetadata`, the typed record saved with
                  the scores
``run``           :class:`~biocoreset.scoring.run.ScoringRun`: the phases in order
================  ===========================================================================

Imports go one way: ``api`` → ``scoring`` → ``data``, ``grads``, ``store``, ``plugins``.
"""

from biocoreset.scoring.components import build_components, resolve_adapter, resolve_config
from biocoreset.scoring.fingerprint import model_fingerprint, run_fingerprint
from biocoreset.scoring.fit import fit_curvature
from biocoreset.scoring.index import index_source
from biocoreset.scoring.metadata import ScoreMetadata
from biocoreset.scoring.run import ScoringRun
from biocoreset.scoring.streaming import auto_shard_size, iter_rows, only_rows, rank_batches
from biocoreset.scoring.subset import SUBSET_RULE, draw_subset, subset_keys, subset_size

__all__ = [
    "SUBSET_RULE",
    "ScoreMetadata",
    "ScoringRun",
    "auto_shard_size",
    "build_components",
    "draw_subset",
    "fit_curvature",
    "index_source",
    "iter_rows",
    "model_fingerprint",
    "only_rows",
    "rank_batches",
    "resolve_adapter",
    "resolve_config",
    "run_fingerprint",
    "subset_keys",
    "subset_size",
]
