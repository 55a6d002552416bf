"""benchmarks/replication_audit.py: the near-duplicate search against a brute force, and the audit
of a toy round folder."""

from __future__ import annotations

import csv
import json
import random

from benchmarks import replication_audit as audit

COLUMNS = ["id", "sequence", "species", "chain", "v_gene", "v_family", "j_gene", "cdr3_length"]


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_nearest_matches_a_brute_force():
    rng = random.Random(0)
    corpus = ["".join(rng.choice("ACDE") for _ in range(rng.randint(5, 8))) for _ in range(60)]
    queries = ["".join(rng.choice("ACDE") for _ in range(rng.randint(5, 8))) for _ in range(200)]
    queries += [corpus[0][1:], corpus[1] + "A", corpus[2][:2] + corpus[2][3:]]  # indels for sure
    found = audit.nearest(queries, corpus)
    for q, got in zip(queries, found, strict=True):
        same = [sum(x != y for x, y in zip(q, c, strict=True)) for c in corpus if len(c) == len(q)]
        assert got["hamming"] == (min(same) if same else None), q
        indel = any(abs(len(c) - len(q)) == 1 and _edit_distance(q, c) == 1 for c in corpus)
        assert got["indel1"] == indel, q
    assert all(f["indel1"] for f in found[-3:])


def _tsv(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*COLUMNS, "bucket"], delimiter="\t")
        w.writeheader()
        for r in rows:
            w.writerow({"bucket": "", **r})


def _row(rid, seq, species, chain, v, j):
    fam = v.split("-")[0]
    return dict(id=rid, sequence=seq, species=species, chain=chain, v_gene=v, v_family=fam,
                j_gene=j, cdr3_length="3" if j else "")  # fmt: skip


def test_audit_of_a_toy_round(tmp_path):
    run = tmp_path / "run"
    (run / "tasks").mkdir(parents=True)
    corpus = [
        _row("c0", "QVQLAAAWG", "human", "H", "IGHV1-2", "IGHJ4"),
        _row("c1", "QVQLCCCWG", "mouse", "H", "IGHV1-5", "IGHJ4"),
        _row("c2", "DIQMKKFG", "human", "K", "IGKV1-5", "IGKJ1"),
        _row("c3", "DIQMKKFG", "human", "K", "IGKV1-5", "IGKJ1"),
    ]
    (run / "corpus.fasta").write_text(
        "".join(
            f">{r['id']} species={r['species']} chain={r['chain']} v_gene={r['v_gene']} "
            f"j_gene={r['j_gene']} cdr3_length=3\n{r['sequence']}\n"
            for r in corpus
        )
    )
    sim = [
        _row("t0", "DIQMKRFG", "human", "K", "IGKV1-5", "IGKJ1"),  # one substitution from c2
        _row("t1", "QVQLGGGGWG", "human", "H", "IGHV1-2", "IGHJ2"),  # nothing near
    ]
    germ = [
        _row("human:IGHV1-2*01", "QVQLAAAC", "human", "H", "IGHV1-2", ""),
        _row("human:IGHV3-9*01", "EVQLC", "human", "H", "IGHV3-9", ""),  # no corpus record
    ]
    _tsv(run / "tasks" / "train-simulated.tsv", sim)
    _tsv(run / "tasks" / "test-simulated.tsv", sim)
    _tsv(run / "tasks" / "train.tsv", sim + germ)
    _tsv(run / "tasks" / "test-germline.tsv", [_row("human:IGHV3-9D*01", "EVQLC", "human", "H",
                                                    "IGHV3-9D", "")])  # fmt: skip
    out = audit.audit(run, trust=tmp_path / "absent.json")
    json.dumps(out)
    assert out["j_genes"]["n_labels"] == 3
    assert out["j_genes"]["labels_naming_human_and_mouse"] == ["IGHJ4"]
    assert out["germline_training_rows"]["rows_of_genes_the_corpus_lacks"] == 1
    near = out["near_duplicates"]["test-simulated"]
    assert near["all"]["one_substitution"] == 1 and near["chain=K"]["one_substitution_share"] == 1
    assert out["composition"]["corpus"]["chain"] == {"H": 0.5, "K": 0.5}
    assert out["corpus_share_with_an_exact_duplicate"] == {"H": 0.0, "K": 1.0}
    eq = out["germline_test_in_training"]
    assert eq["equal_to_a_training_row"] == 1 and eq["pairs"] == {
        "human:IGHV3-9D*01": ["human:IGHV3-9*01"]
    }
    assert "antiberty_loss" not in out
