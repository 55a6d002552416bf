"""Former home of the distributed context; it lives in :mod:`biocoreset.runtime.distributed`.

Re-exported here so ``from biocoreset.train.distributed import current`` keeps working.

>>> from biocoreset.train.distributed import current
>>> current().world_size
1
"""

from biocoreset.runtime.distributed import DistContext, current, init_distributed

__all__ = ["DistContext", "current", "init_distributed"]
