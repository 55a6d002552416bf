"""Scorers (built-in plugins): ``self-influence``, ``loss``, ``grad-norm``."""
