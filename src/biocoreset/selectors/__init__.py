"""Selectors (built-in plugins): ``topk``, ``cci``, ``random``; and budget parsing."""

from biocoreset.selectors.budget import resolve_budget

__all__ = ["resolve_budget"]
