"""Child process of the crash/resume test: score a corpus into a sharded file.

Usage: ``python crash_worker.py CORPUS OUTPUT [SLEEP]``; with ``SLEEP`` > 0 every batch is slowed
down so that the parent can kill the process mid-scoring.
"""

from __future__ import annotations

import sys
import time

from biocoreset.adapters.hf import HFAdapter
from biocoreset.api import score_to_file
from biocoreset.testing import tiny_esm


class SlowAdapter(HFAdapter):
    """The hf adapter, slower."""

    delay = 0.0

    def per_sample_loss(self, batch):
        time.sleep(self.delay)
        return super().per_sample_loss(batch)


def main(corpus: str, output: str, delay: float) -> None:
    model, tok = tiny_esm(seed=0)
    adapter = SlowAdapter(model, tok)
    adapter.delay = delay
    score_to_file(adapter, corpus, output, subset=6, batch_size=2, shard_size=4, progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
