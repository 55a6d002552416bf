"""Selection: :func:`select` and :class:`Selection` (:mod:`~biocoreset.selection.core`), and the
coreset folder writer :func:`~biocoreset.selection.folder.select_to_folder`.

Importing this package imports neither torch nor any model code (the folder writer is imported
only from :mod:`biocoreset.selection.folder`).

>>> from biocoreset.selection import select
>>> select([0.3, 0.9, 0.1], budget=1).indices.tolist()
[1]
"""

from __future__ import annotations

from biocoreset.selection.core import DEBIAS_METHODS, Selection, StrataPlan, run_selector, select

__all__ = ["DEBIAS_METHODS", "Selection", "StrataPlan", "run_selector", "select"]
