"""The third replication round's data audit: every figure of issue 32's "small slips", measured on a
round's own corpus and task files (``docs/replication.md``, third round; ``docs/antibody-corpus.md``).

Usage (after ``python examples/replicate_antibody.py --out RUN`` has built the corpus)::

    python -m benchmarks.replication_audit --run runs/antibody \\
        --out benchmarks/results/replication-round3/audit.json

It reads ``RUN/corpus.fasta`` and ``RUN/tasks/*.tsv`` (nothing is written there) and
``benchmarks/results/trust_antibody.json``, and writes:

* ``j_genes``: the J labels of the J-gene task (``train-simulated`` and ``test-simulated``), and
  which of them name a human and a mouse gene at once (the label is the IMGT name alone, so
  human IGHJ4 and mouse IGHJ4 are one class);
* ``germline_training_rows``: the real germline V alleles in ``train.tsv``, and how many belong to
  a V gene (species, chain, gene) that no corpus record carries;
* ``antiberty_loss``: the mean masked loss of AntiBERTy in ``trust_antibody.json``;
* ``composition``: chain and species shares of the corpus and of each simulated task file (the
  task files hold no exact corpus sequence; ``corpus_share_with_an_exact_duplicate`` gives, per
  chain, the share of corpus records whose sequence occurs more than once);
* ``near_duplicates``: for each simulated task row, its nearest corpus sequence: Hamming distance
  (equal lengths only) and, separately, one insertion or deletion (edit distance 1 between lengths
  that differ by one); per chain;
* ``germline_test_in_training``: the held-out ("unseen") germline alleles whose sequence equals a
  row of ``train.tsv`` (the probes' training set), with the rows they equal; and how many corpus
  sequences begin with a held-out allele's V up to its last Cys (the conserved Cys 104).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRUST = ROOT / "benchmarks" / "results" / "trust_antibody.json"
SIMULATED = ("train-simulated", "test-simulated")


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a task TSV as dicts."""
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def read_corpus(path: Path) -> list[dict[str, str]]:
    """``id``, ``sequence`` and the header's ``key=value`` labels of every corpus record."""
    out: list[dict[str, str]] = []
    for block in path.read_text(encoding="utf-8").split(">")[1:]:
        head, *lines = block.splitlines()
        rid, *fields = head.split()
        out.append({"id": rid, "sequence": "".join(lines), **dict(f.split("=", 1) for f in fields)})
    return out


def shares(rows: list[dict[str, str]], field: str) -> dict[str, float]:
    """Share of each value of ``field``, rounded to 4 places."""
    counts = Counter(r[field] for r in rows)
    return {k: round(v / len(rows), 4) for k, v in sorted(counts.items())}


def _by_length(seqs: list[str]) -> dict[int, np.ndarray]:
    groups: dict[int, list[str]] = defaultdict(list)
    for s in seqs:
        groups[len(s)].append(s)
    return {
        n: np.frombuffer("".join(g).encode("ascii"), dtype=np.uint8).reshape(len(g), n)
        for n, g in groups.items()
    }


def _one_deletion(short: np.ndarray, longer: np.ndarray) -> bool:
    """Whether one deletion from a row of ``longer`` (``[k, L+1]``) gives a row of ``short``
    (``[m, L]``); one of ``k`` and ``m`` is 1 (the other side is broadcast)."""
    if short.size == 0 or longer.size == 0:
        return False
    n = short.shape[1]
    pre = longer[:, None, :n] == short[None, :, :]
    suf = (longer[:, None, 1:] == short[None, :, :])[..., ::-1]
    lcp = np.where(pre.all(-1), n, pre.argmin(-1))
    lcs = np.where(suf.all(-1), n, suf.argmin(-1))
    return bool((lcp + lcs >= n).any())


def nearest(queries: list[str], corpus: list[str]) -> list[dict[str, Any]]:
    """Per query: the smallest Hamming distance to a corpus sequence of its length (``None`` if
    none has it), and whether a corpus sequence is one insertion or deletion away."""
    groups = _by_length(sorted(set(corpus)))
    empty = np.zeros((0, 0), dtype=np.uint8)
    out = []
    for q in queries:
        a = np.frombuffer(q.encode("ascii"), dtype=np.uint8)
        same = groups.get(len(q))
        hamming = None if same is None else int((same != a).sum(1).min())
        indel = _one_deletion(a[None, :], groups.get(len(q) + 1, empty)) or _one_deletion(
            groups.get(len(q) - 1, empty), a[None, :]
        )
        out.append({"hamming": hamming, "indel1": indel})
    return out


def _near_summary(rows: list[dict[str, str]], near: list[dict[str, Any]]) -> dict[str, Any]:
    def summary(idx: list[int]) -> dict[str, Any]:
        hist = Counter(
            "no equal length"
            if near[i]["hamming"] is None
            else str(near[i]["hamming"])
            if near[i]["hamming"] < 3
            else "3+"
            for i in idx
        )
        sub1 = sum(near[i]["hamming"] == 1 for i in idx)
        indel = sum(bool(near[i]["indel1"]) for i in idx)
        either = sum(near[i]["hamming"] == 1 or bool(near[i]["indel1"]) for i in idx)
        return {
            "n": len(idx),
            "exact": sum(near[i]["hamming"] == 0 for i in idx),
            "one_substitution": sub1,
            "one_substitution_share": round(sub1 / len(idx), 4),
            "one_indel": indel,
            "one_edit_share": round(either / len(idx), 4),
            "one_edit": either,
            "min_hamming_histogram": dict(sorted(hist.items())),
        }

    out = {"all": summary(list(range(len(rows))))}
    for chain in sorted({r["chain"] for r in rows}):
        out[f"chain={chain}"] = summary([i for i, r in enumerate(rows) if r["chain"] == chain])
    return out


def audit(run: Path, trust: Path = TRUST) -> dict[str, Any]:
    """Every figure of the audit, from ``run``'s corpus and task files and ``trust``."""
    corpus = read_corpus(run / "corpus.fasta")
    tasks = {p.stem: read_tsv(p) for p in sorted((run / "tasks").glob("*.tsv"))}
    out: dict[str, Any] = {"run": str(run), "corpus_records": len(corpus)}
    out["corpus_distinct_sequences"] = len({r["sequence"] for r in corpus})
    seq_count = Counter(r["sequence"] for r in corpus)
    dup: dict[str, list[bool]] = defaultdict(list)
    for r in corpus:
        dup[r["chain"]].append(seq_count[r["sequence"]] > 1)
    out["corpus_share_with_an_exact_duplicate"] = {
        chain: round(sum(flags) / len(flags), 4) for chain, flags in sorted(dup.items())
    }

    # J labels of the J-gene task, and the species each name covers
    j_rows = [r for name in SIMULATED for r in tasks[name]] + corpus
    species_of: dict[str, set[str]] = defaultdict(set)
    for r in j_rows:
        species_of[r["j_gene"]].add(r["species"])
    both = sorted(j for j, s in species_of.items() if len(s) > 1)
    out["j_genes"] = {
        "labels_train_simulated": sorted({r["j_gene"] for r in tasks["train-simulated"]}),
        "labels_test_simulated": sorted({r["j_gene"] for r in tasks["test-simulated"]}),
        "labels_corpus": sorted({r["j_gene"] for r in corpus}),
        "n_labels": len(species_of),
        "labels_naming_human_and_mouse": both,
        "n_labels_naming_human_and_mouse": len(both),
        "n_species_genes": sum(len(s) for s in species_of.values()),
    }

    # V family classes, the same question
    vfam_species: dict[str, set[str]] = defaultdict(set)
    for r in tasks["train"]:
        vfam_species[r["v_family"]].add(r["species"])
    out["v_families"] = {
        "n_labels_train": len(vfam_species),
        "n_labels_naming_human_and_mouse": sum(len(s) > 1 for s in vfam_species.values()),
    }

    # germline training rows whose V gene the corpus lacks
    corpus_genes = {(r["species"], r["chain"], r["v_gene"]) for r in corpus}
    germ = [r for r in tasks["train"] if not r["j_gene"]]
    lacking = [r for r in germ if (r["species"], r["chain"], r["v_gene"]) not in corpus_genes]
    lacking_genes = {(r["species"], r["chain"], r["v_gene"]) for r in lacking}
    out["germline_training_rows"] = {
        "train_rows": len(tasks["train"]),
        "germline_rows": len(germ),
        "germline_genes": len({(r["species"], r["chain"], r["v_gene"]) for r in germ}),
        "rows_of_genes_the_corpus_lacks": len(lacking),
        "genes_the_corpus_lacks": len(lacking_genes),
        "rows_lacking_by_species": dict(sorted(Counter(r["species"] for r in lacking).items())),
        "share": round(len(lacking) / len(germ), 4),
    }

    # AntiBERTy's masked loss in its own results
    if trust.exists():
        t = json.loads(trust.read_text(encoding="utf-8"))
        out["antiberty_loss"] = {
            "file": str(trust.relative_to(ROOT)) if trust.is_relative_to(ROOT) else str(trust),
            "num_sequences": t["num_sequences"],
            "mean_loss": round(t["mean_loss"], 4),
            "finetune_loss_before": round(t["finetune"]["loss_before"], 4),
            "finetune_loss_after": round(t["finetune"]["loss_after"], 4),
            "wo_ft_mean_loss": round(t["wo_ft"]["mean_loss"], 4),
        }

    # composition of the simulated task sets against the corpus
    out["composition"] = {
        name: {"n": len(rows), "chain": shares(rows, "chain"), "species": shares(rows, "species")}
        for name, rows in (("corpus", corpus), *((n, tasks[n]) for n in SIMULATED))
    }

    # near-duplicates of corpus sequences among the simulated task rows
    seqs = [r["sequence"] for r in corpus]
    out["near_duplicates"] = {
        name: _near_summary(tasks[name], nearest([r["sequence"] for r in tasks[name]], seqs))
        for name in SIMULATED
    }

    # held-out germline alleles equal to a probe training row
    train_by_seq: dict[str, list[str]] = defaultdict(list)
    for r in tasks["train"]:
        train_by_seq[r["sequence"]].append(r["id"])
    equal = {
        r["id"]: train_by_seq[r["sequence"]]
        for r in tasks["test-germline"]
        if r["sequence"] in train_by_seq
    }
    same_family = sum(
        all(
            next(t for t in tasks["train"] if t["id"] == tid)["v_family"] == r["v_family"]
            for tid in equal[r["id"]]
        )
        for r in tasks["test-germline"]
        if r["id"] in equal
    )
    prefixes = {r["sequence"][: r["sequence"].rfind("C") + 1] for r in tasks["test-germline"]}
    starts = {q for q in seqs for p in prefixes if q.startswith(p)}
    out["germline_test_in_training"] = {
        "test_germline_rows": len(tasks["test-germline"]),
        "test_germline_genes": len(
            {(r["species"], r["chain"], r["v_gene"]) for r in tasks["test-germline"]}
        ),
        "corpus_sequences_starting_with_a_test_allele_up_to_its_last_cys": len(starts),
        "equal_to_a_training_row": len(equal),
        "equal_with_the_same_v_family": same_family,
        "pairs": equal,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the audit and write its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="the round's folder (read only)")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/replication-round3/audit.json"
    )
    ap.add_argument("--trust", type=Path, default=TRUST, help="AntiBERTy's trust results")
    args = ap.parse_args(argv)
    result = audit(args.run, args.trust)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    j, g = result["j_genes"], result["germline_training_rows"]
    print(f"J labels: {j['n_labels']}, {j['n_labels_naming_human_and_mouse']} name human and mouse")
    print(
        f"germline training rows of genes the corpus lacks: {g['rows_of_genes_the_corpus_lacks']}"
        f" of {g['germline_rows']}"
    )
    for name, comp in result["composition"].items():
        print(f"{name}: chain {comp['chain']}, species {comp['species']}")
    for name, near in result["near_duplicates"].items():
        a = near["all"]
        print(
            f"{name}: one substitution from the corpus {a['one_substitution']} of {a['n']}"
            f" ({a['one_substitution_share']:.1%}); one edit incl. indels {a['one_edit']}"
        )
    e = result["germline_test_in_training"]
    print(
        f"unseen alleles equal to a training row: {e['equal_to_a_training_row']} of "
        f"{e['test_germline_rows']}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
