"""Worker run by the distributed tests, alone or under ``torchrun``: fine-tune, then score.

Usage: ``python dist_worker.py CORPUS OUT_DIR`` — writes ``OUT_DIR/scores.parquet`` and (rank 0)
``OUT_DIR/report.json`` with the fine-tuned weights' checksum and the diagnostic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from biocoreset.adapters.hf import HFAdapter
from biocoreset.api import score_to_file
from biocoreset.runtime.distributed import current, init_distributed
from biocoreset.testing import tiny_esm
from biocoreset.train.finetune import finetune


def main(corpus: str, out: str) -> None:
    ctx = init_distributed()
    model, tok = tiny_esm(seed=0)  # float64
    adapter = HFAdapter(model, tok)
    # D_sub = 9 with batch 4: steps of 4, 4 and 1 sequence(s): under 2 ranks one rank has none.
    ft = finetune(
        adapter,
        corpus,
        subset=9,
        batch_size=4,
        lr=1e-2,
        warmup_steps=1,
        diagnostic_samples=None,
        progress=False,
    )
    meta = score_to_file(
        adapter,
        corpus,
        Path(out) / "scores.parquet",
        subset=9,
        batch_size=2,
        shard_size=4,
        progress=False,
    )
    # several masks per sequence: means and the split-half stability over ranks and shards
    meta_k2 = score_to_file(
        adapter,
        corpus,
        Path(out) / "scores_k2.parquet",
        subset=9,
        batch_size=2,
        shard_size=4,
        mask_draws=2,
        progress=False,
    )
    if ctx.is_main:
        weights = {k: v.tolist() for k, v in model.state_dict().items() if v.dtype == torch.float64}
        report = {
            "world_size": ctx.world_size,
            "losses": ft.losses,
            "before": [ft.before.mean_loss, ft.before.mean_grad_norm],
            "after": [ft.after.mean_loss, ft.after.mean_grad_norm],
            "weights": weights,
            "damping": meta["damping"],
            "meta_world_size": meta["world_size"],
            "stability_k2": meta_k2["stability"],
        }
        (Path(out) / "report.json").write_text(json.dumps(report))
    current().barrier()
    if ctx.is_distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
