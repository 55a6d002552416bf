"""Score files: results as Parquet with metadata, written atomically."""

from biocoreset.store.result import ScoreResult, load_scores

__all__ = ["ScoreResult", "load_scores"]
