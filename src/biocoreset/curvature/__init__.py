"""Curvature estimators (built-in plugins): ``identity``, ``diagonal``, ``kfac``, ``ekfac``."""
