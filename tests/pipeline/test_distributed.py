"""torchrun with 2 ranks (gloo, CPU) on the corpus in another order gives the single-process
fine-tune, Fisher and scores (D_sub is drawn from the ids)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from biocoreset import load_scores
from biocoreset.data.synthetic import write_fasta
from biocoreset.testing import random_rna

WORKER = Path(__file__).with_name("dist_worker.py")


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)))


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)
def test_torchrun_two_ranks_equals_one_process(tmp_path):
    records = random_rna(22, seed=5, min_len=4, max_len=40)
    corpus = write_fasta(records, tmp_path / "c.fa")
    perm = np.random.default_rng(0).permutation(len(records))
    permuted = write_fasta([records[i] for i in perm], tmp_path / "p.fa")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for out, nproc, data in ((one, 1, corpus), (two, 2, permuted)):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={nproc}",
                str(WORKER),
                str(data),
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a = json.loads((one / "report.json").read_text())
    b = json.loads((two / "report.json").read_text())
    assert (a["world_size"], b["world_size"], b["meta_world_size"]) == (1, 2, 2)
    # fine-tuning (DistributedDataParallel; one step has a rank with no sequence)
    assert len(a["losses"]) == len(b["losses"]) == 3
    assert _rel(a["losses"], b["losses"]) < 1e-10
    assert _rel(a["before"], b["before"]) < 1e-10 and _rel(a["after"], b["after"]) < 1e-10
    for name in a["weights"]:
        diff = np.abs(np.array(a["weights"][name]) - np.array(b["weights"][name]))
        assert diff.max() <= 1e-10 * max(1.0, np.abs(np.array(a["weights"][name])).max()), name
    # Fisher (all-reduced) and sharded scoring: one merged file
    assert a["damping"] == pytest.approx(b["damping"], rel=1e-10)
    sa, sb = load_scores(one / "scores.parquet"), load_scores(two / "scores.parquet")
    assert sb.ids == [records[i][0] for i in perm] and len(set(sb.ids)) == 22
    back = np.argsort(perm)  # row of each original record in the permuted file
    assert sa.metadata["subset_ids"] == sb.metadata["subset_ids"]
    assert _rel(sa.scores, sb.scores[back]) < 1e-6
    assert _rel(sa.loss, sb.loss[back]) < 1e-10
    assert not (two / "scores.parquet.parts").exists()
    # mask_draws=2: the means and the stability (rows in another order, two ranks) agree
    ka, kb = load_scores(one / "scores_k2.parquet"), load_scores(two / "scores_k2.parquet")
    assert _rel(ka.scores, kb.scores[back]) < 1e-6 and _rel(ka.loss, kb.loss[back]) < 1e-10
    assert not np.allclose(ka.scores, sa.scores)
    for key in ("split_half", "projected", "split_half_length_regressed"):
        assert a["stability_k2"][key] == pytest.approx(b["stability_k2"][key], abs=1e-9), key
