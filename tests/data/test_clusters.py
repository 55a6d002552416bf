"""MMseqs2 clustering (:func:`cluster_to_file`) on planted families, and the binary's errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from biocoreset.data.clusters import cluster_to_file, read_clusters
from biocoreset.data.mmseqs import MMseqsError, find_mmseqs
from biocoreset.errors import ConfigError, InputError, OutputExistsError

needs_mmseqs = pytest.mark.skipif(
    shutil.which("mmseqs") is None,
    reason="MMseqs2 (`mmseqs`) is not on PATH: apt-get install mmseqs2 (tools/install_test_env.sh)",
)
AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def planted(families: int, per_family: int, length: int = 120, mutate: float = 0.03, seed: int = 0):
    """Random protein families: each a random root and ``per_family`` copies with ``mutate`` of
    the residues substituted (~97% identity); different roots share ~5% identity."""
    rng = np.random.default_rng(seed)
    records, truth = [], {}
    for f in range(families):
        root = rng.choice(AA, length)
        for m in range(per_family):
            seq = root.copy()
            hit = rng.random(length) < mutate
            seq[hit] = rng.choice(AA, int(hit.sum()))
            rid = f"f{f}_{m}"
            records.append((rid, "".join(seq)))
            truth[rid] = f
    return records, truth


@needs_mmseqs
def test_planted_families_are_the_clusters(tmp_path):
    records, truth = planted(families=6, per_family=5)
    records += [("lone", "".join(np.random.default_rng(9).choice(AA, 120)))]
    truth["lone"] = 99
    info = cluster_to_file(records, tmp_path / "out" / "clu.tsv", min_seq_id=0.9, coverage=0.8)
    members = read_clusters(tmp_path / "out" / "clu.tsv")
    assert set(members) == set(truth)
    # the clusters are exactly the planted families
    by_rep: dict[str, set[int]] = {}
    for m, rep in members.items():
        by_rep.setdefault(rep, set()).add(truth[m])
    assert all(len(fams) == 1 for fams in by_rep.values())
    assert len(by_rep) == 7
    assert info["clusters"] == 7 and info["sequences"] == 31
    assert info["largest"] == 5 and info["singletons"] == 1
    assert info["settings"] == {"min_seq_id": 0.9, "coverage": 0.8, "cov_mode": 0, "threads": 1}
    assert info["mmseqs_version"] and info["seconds"] >= 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clu.tsv"]  # no leftovers
    with pytest.raises(OutputExistsError, match="exists; pass force=True"):
        cluster_to_file(records, tmp_path / "out" / "clu.tsv")
    # at 99% identity the 97%-identical copies split apart
    strict = cluster_to_file(records, tmp_path / "out" / "clu.tsv", min_seq_id=0.99, force=True)
    assert strict["clusters"] > 7


@needs_mmseqs
def test_a_fasta_file_is_clustered(tmp_path):
    records, _ = planted(families=2, per_family=3)
    fasta = tmp_path / "c.fasta"
    fasta.write_text("".join(f">{i} some description\n{s}\n" for i, s in records))
    info = cluster_to_file(fasta, tmp_path / "clu.tsv")
    assert info["clusters"] == 2
    assert set(read_clusters(tmp_path / "clu.tsv")) == {i for i, _ in records}


def test_missing_binary_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BIOCORESET_MMSEQS", raising=False)
    with pytest.raises(
        MMseqsError, match=r"not on PATH; install MMseqs2: .*apt-get install mmseqs2"
    ):
        find_mmseqs()
    with pytest.raises(MMseqsError, match="bioconda"):
        cluster_to_file([("a", "ACDE")], tmp_path / "clu.tsv")
    monkeypatch.setenv("BIOCORESET_MMSEQS", str(tmp_path / "nope"))
    with pytest.raises(MMseqsError, match=r"BIOCORESET_MMSEQS=.* is not an executable"):
        find_mmseqs()


@needs_mmseqs
def test_bad_input_is_refused_before_running(tmp_path):
    with pytest.raises(InputError, match="the id 'a' appears twice"):
        cluster_to_file([("a", "ACDEF"), ("a", "ACDEF")], tmp_path / "clu.tsv")
    with pytest.raises(ConfigError, match=r"min_seq_id must be a fraction in \[0, 1\], got 90"):
        cluster_to_file([("a", "ACDEF")], tmp_path / "clu.tsv", min_seq_id=90)
    with pytest.raises(ConfigError, match="cov_mode must be one of"):
        cluster_to_file([("a", "ACDEF")], tmp_path / "clu.tsv", cov_mode=9)
    assert not (tmp_path / "clu.tsv").exists()
