"""The ``cluster`` selector: uniform cluster draws, one member each, cycling, ``within``, errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from biocoreset import select
from biocoreset.errors import ConfigError, InputError
from biocoreset.selectors.cluster import ClusterSelector, cluster_order
from biocoreset.store.result import ScoreResult
from biocoreset.testing import check_selector


def _write(path: Path, sizes: list[int]) -> tuple[list[str], list[int]]:
    """A cluster TSV with clusters of ``sizes`` (members interleaved in row order); the ids and
    each id's cluster."""
    ids, label = [], []
    for c, size in enumerate(sizes):
        for m in range(size):
            ids.append(f"c{c}m{m}")
            label.append(c)
    order = np.random.default_rng(0).permutation(len(ids))  # rows not grouped by cluster
    ids = [ids[i] for i in order]
    label = [label[i] for i in order]
    rep = {c: next(i for i, lab in zip(ids, label, strict=True) if lab == c) for c in set(label)}
    path.write_text("".join(f"{rep[lab]}\t{i}\n" for i, lab in zip(ids, label, strict=True)))
    return ids, label


def _result(ids: list[str], scores: np.ndarray | None = None, negated: bool = False) -> ScoreResult:
    n = len(ids)
    s = np.zeros(n) if scores is None else scores
    return ScoreResult(
        ids=ids, scores=s, loss=np.zeros(n), length=[1] * n, metadata={"negated": negated}
    )


SIZES = [1, 2, 3, 5, 8, 1, 1, 4, 10, 2]


def test_one_member_per_cluster_and_clusters_drawn_uniformly(tmp_path):
    ids, label = _write(tmp_path / "c.tsv", SIZES)
    res = _result(ids)
    cluster_hits: Counter[int] = Counter()
    member_hits: Counter[str] = Counter()
    draws = 3000
    for seed in range(draws):
        sel = select(res, "cluster", budget=3, seed=seed, clusters=tmp_path / "c.tsv")
        chosen = [label[i] for i in sel.indices]
        assert len(set(chosen)) == 3  # three distinct clusters
        cluster_hits.update(chosen)
        member_hits.update(sel.ids)
    # each of the 10 clusters is drawn with probability 3/10 whatever its size: binomial sd ~0.0084
    for c in range(len(SIZES)):
        assert abs(cluster_hits[c] / draws - 0.3) < 0.04, (c, cluster_hits[c])
    # and the member of the 10-member cluster is uniform: each 0.03, sd ~0.0031
    big = [i for i, lab in zip(ids, label, strict=True) if lab == 8]
    for i in big:
        assert abs(member_hits[i] / draws - 0.03) < 0.015, (i, member_hits[i])


def test_budget_beyond_the_clusters_cycles_them(tmp_path):
    ids, label = _write(tmp_path / "c.tsv", SIZES)
    res = _result(ids)
    for budget in (10, 11, 17, 25, sum(SIZES)):
        sel = select(res, "cluster", budget=budget, seed=budget, clusters=str(tmp_path / "c.tsv"))
        taken = Counter(label[i] for i in sel.indices)
        assert sel.budget == budget == len(set(sel.indices.tolist()))
        # every full round took one member of every cluster with one left; the last is partial
        rounds = 0
        while rounds < max(SIZES) and all(
            taken[c] >= min(size, rounds + 1) for c, size in enumerate(SIZES)
        ):
            rounds += 1
        for c, size in enumerate(SIZES):
            assert min(size, rounds) <= taken[c] <= min(size, rounds + 1), (budget, c, taken)


def test_within_influence_takes_the_most_influential_member(tmp_path):
    ids, label = _write(tmp_path / "c.tsv", SIZES)
    scores = np.random.default_rng(1).normal(size=len(ids))
    for negated in (False, True):
        res = _result(ids, scores, negated)
        for seed in range(5):
            sel = select(
                res, "cluster", budget=4, seed=seed, clusters=tmp_path / "c.tsv", within="influence"
            )
            rnd = select(res, "cluster", budget=4, seed=seed, clusters=tmp_path / "c.tsv")
            drawn = {label[i] for i in sel.indices}
            assert drawn == {label[i] for i in rnd.indices}  # same seed, same clusters
            for c in drawn:
                rows = [i for i, lab in enumerate(label) if lab == c]
                best = max(rows, key=lambda i: -scores[i] if negated else scores[i])
                assert best in sel.indices.tolist()
        assert sel.options["largest"] is (not negated)


def test_influence_cycles_in_influence_order():
    labels = np.array([0, 0, 0, 1])
    order = cluster_order(labels, seed=3, influence=np.array([0.2, 0.9, 0.5, 0.0]))
    assert [int(i) for i in order if labels[i] == 0] == [1, 2, 0]
    assert set(order[:2].tolist()) == {1, 3}


def test_seed_reproducible_and_different_seeds_differ(tmp_path):
    ids, _ = _write(tmp_path / "c.tsv", SIZES)
    res = _result(ids)
    a = select(res, "cluster", budget=6, seed=7, clusters=tmp_path / "c.tsv").indices
    b = select(res, "cluster", budget=6, seed=7, clusters=tmp_path / "c.tsv").indices
    assert np.array_equal(a, b)  # exact: integer indices of seeded draws, one process
    others = {
        tuple(select(res, "cluster", budget=6, seed=s, clusters=tmp_path / "c.tsv").indices)
        for s in range(8)
    }
    assert len(others) > 1


def test_conformance_once_bound(tmp_path):
    ids = [f"r{i}" for i in range(200)]
    (tmp_path / "c.tsv").write_text("".join(f"r{i - i % 7}\tr{i}\n" for i in range(200)))
    for within in ("random", "influence"):
        check_selector(ClusterSelector(clusters=tmp_path / "c.tsv", within=within).with_ids(ids))


def test_errors_name_the_id_or_option(tmp_path):
    ids, _ = _write(tmp_path / "c.tsv", [2, 3])
    tsv = tmp_path / "c.tsv"
    with pytest.raises(
        InputError, match=r"id 'extra' \(row 5 of the scores\) is not in the cluster"
    ):
        select(_result([*ids, "extra"]), "cluster", budget=2, clusters=tsv)
    with pytest.raises(InputError, match=r"lists '.*', which is not among the 4 scored ids"):
        select(_result(ids[:4]), "cluster", budget=2, clusters=tsv)
    with pytest.raises(ConfigError, match="needs the scored sequences' ids"):
        select(np.zeros(5), "cluster", budget=2, clusters=tsv)
    with pytest.raises(ConfigError, match="needs clusters="):
        select(_result(ids), "cluster", budget=2)
    with pytest.raises(ConfigError, match="within must be one of 'random', 'influence'"):
        select(_result(ids), "cluster", budget=2, clusters=tsv, within="best")
    with pytest.raises(InputError, match="does not exist"):
        select(_result(ids), "cluster", budget=2, clusters=tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\ta\na b\n")
    with pytest.raises(InputError, match="line 2: expected 'representative<TAB>member'"):
        select(_result(["a", "b"]), "cluster", budget=1, clusters=bad)
    bad.write_text("a\ta\nb\ta\n")
    with pytest.raises(InputError, match="line 2: member 'a' is listed twice"):
        select(_result(["a"]), "cluster", budget=1, clusters=bad)
