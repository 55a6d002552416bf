"""Sphinx configuration for biocoreset."""

from __future__ import annotations

import sys
from pathlib import Path

import biocoreset

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "biocoreset"
author = "biocoreset developers"
copyright = "2026, biocoreset developers"
release = biocoreset.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
    "biocoreset_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "benchmarks-*.md", "replication-results.md", "_ext"]
html_theme = "furo"
html_title = f"biocoreset {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nitpicky = False
suppress_warnings = ["myst.header"]
