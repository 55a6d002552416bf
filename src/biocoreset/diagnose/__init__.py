"""Trust tools: is a selection signal or noise? (``biocoreset diagnose``).

See :func:`~biocoreset.diagnose.report.diagnose` and ``docs/trust.md``.
"""

from __future__ import annotations

from biocoreset.diagnose.composition import (
    UNLABELLED,
    composition,
    composition_summary,
    labels_from_regex,
    random_baseline,
    read_id_file,
    read_labels,
)
from biocoreset.diagnose.report import REPORT_FILES, Diagnosis, diagnose

__all__ = [
    "REPORT_FILES",
    "UNLABELLED",
    "Diagnosis",
    "composition",
    "composition_summary",
    "diagnose",
    "labels_from_regex",
    "random_baseline",
    "read_id_file",
    "read_labels",
]
