"""Process-level runtime below every other layer: the distributed context.

>>> from biocoreset.runtime import current
>>> current().is_main
True
"""

from biocoreset.runtime.distributed import DistContext, current, init_distributed

__all__ = ["DistContext", "current", "init_distributed"]
