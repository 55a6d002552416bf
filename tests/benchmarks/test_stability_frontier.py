"""benchmarks/bench_stability_frontier.py: its one-pass scores equal real ``score`` runs, and the
setting ``diagnose`` names is the measured frontier's."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks.bench_stability_frontier import SCOPES, Frontier, costs

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.diagnose.advice import FOR_HALF_DRAW, FOR_ONE_DRAW
from biocoreset.testing import random_rna, tiny_esm

ROOT = Path(__file__).resolve().parents[2]


def test_one_pass_scores_equal_score_runs_for_every_scope_and_k():
    model, tok = tiny_esm(seed=3, layers=4, dtype=torch.float32)
    adapter = HFAdapter(model, tok)
    records = random_rna(24, seed=5, min_len=5, max_len=30)
    args = argparse.Namespace(subset=8, batch_size=5, max_draws=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = Frontier(args, records, seed=1, adapter=adapter, finetune=False)
        for d in range(fr.ndraws):
            fr.score_draw(d)
    for scope, patterns in SCOPES.items():
        for k in (1, 2):
            with warnings.catch_warnings():  # small D_sub, low stability: expected here
                warnings.simplefilter("ignore")
                real = score(
                    adapter,
                    records,
                    subset=fr.dsub_ids,
                    seed=1,
                    mask_draws=k,
                    parameters=patterns,
                    batch_size=3,
                    progress=False,
                )
            assert list(real.ids) == [r for r, _ in records]
            np.testing.assert_allclose(fr.score(k, scope), real.scores, rtol=2e-4, atol=0)
            assert fr.damping[f"{k}|{scope}"] == pytest.approx(real.metadata["damping"], rel=1e-4)


@pytest.mark.parametrize("index, name", [(0, "antiberty"), (1, "rna")])
def test_diagnose_names_the_measured_best_settings(index, name):
    res = json.loads(
        (ROOT / "benchmarks" / "results" / f"stability_frontier_{name}.json").read_text()
    )
    cost = costs(res["checks"], res["ks"])
    rows = {(r["K"], r["scope"]): r["spearman_two_seeds"] for r in res["frontier"]}
    scope_of = {tuple(p) if p else None: s for s, p in SCOPES.items()}

    def best(budget):
        fits = [(rho, key) for key, rho in rows.items() if cost[f"{key[0]}|{key[1]}"] <= budget]
        return max(fits)

    for settings, budget in ((FOR_ONE_DRAW, 1.0), (FOR_HALF_DRAW, 0.5)):
        setting = settings[index]
        rho, (k, scope) = best(budget)
        assert (k, scope) == (setting.mask_draws, scope_of[setting.parameters])
        assert setting.rho == pytest.approx(rho, abs=0.005)
        assert setting.cost == pytest.approx(cost[f"{k}|{scope}"], abs=0.005)
        assert setting.paper_rho == pytest.approx(rows[(1, "all")], abs=0.005)
