"""Held-out data of the antibody tasks: real unseen germline alleles and fresh simulated domains.

:func:`write_task_data` writes five TSV files (columns ``id, sequence, species, chain, v_gene,
v_family, j_gene, cdr3_length, bucket``) next to a corpus built by
:func:`~biocoreset.bench.antibody.repertoire.build_repertoire`:

``train.tsv``
    Simulated domains drawn with another seed (none equal to a corpus sequence) plus the real
    germline V alleles of every gene that is not held out, whether or not the corpus has it (in
    the third round's run, 250 of the 851 germline rows belong to genes no corpus record carries):
    what a task head is trained on.
``train-simulated.tsv``
    The simulated rows of ``train.tsv`` alone: the training set of the tasks whose label exists only
    for recombined domains (J gene, CDR3 length).
``test-simulated.tsv``
    More simulated domains, disjoint from the corpus and from ``train.tsv``. Disjoint means no
    exact copy: because light chains repeat far more than heavy chains, excluding corpus
    sequences skews both simulated sets to heavy chains (64% against the corpus's 49% in the third
    round), and about a fifth of their rows are one substitution from a corpus sequence, nearly
    all of them light chains.
``test-germline.tsv``
    The real germline V alleles of the held-out genes
    (:func:`~biocoreset.bench.antibody.repertoire.heldout_genes`): never in any pretraining corpus.
    The rule holds out gene *names*, so an allele that ``anarci`` also lists under a duplicated
    gene's name (``IGHV3-23*01`` and ``IGHV3-23D*01``) is in ``train.tsv`` too (5 of 90 in the
    third round).
``mlm.tsv``
    ``test-simulated`` and ``test-germline`` together, for the masked-loss task; ``bucket`` is the
    V gene's frequency class in the corpus (``common``: the most used genes covering half the
    corpus, ``medium``: the next 40%, ``rare``: the last 10%, ``unseen``: held-out genes).

The third round's figures are measured by ``python -m benchmarks.replication_audit`` (see
``docs/antibody-corpus.md``, "The task sets, audited").
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs

from biocoreset.bench.antibody.germlines import family_of, gene_of, load_germline_table
from biocoreset.bench.antibody.repertoire import (
    OLGA_MODELS,
    AntibodyRecord,
    RepertoireConfig,
    build_repertoire,
    heldout_genes,
    v_prefix,
)
from biocoreset.errors import ConfigError

__all__ = ["BUCKETS", "COLUMNS", "frequency_buckets", "germline_rows", "write_task_data"]

COLUMNS = ("id", "sequence", "species", "chain", "v_gene", "v_family", "j_gene", "cdr3_length")
BUCKETS = ("common", "medium", "rare", "unseen")
GeneKey = tuple[str, str, str]


def frequency_buckets(
    records: Sequence[AntibodyRecord], *, common: float = 0.5, medium: float = 0.9
) -> dict[GeneKey, str]:
    """``(species, chain, V gene)`` → ``common`` / ``medium`` / ``rare`` by corpus usage.

    Genes are sorted by count (ties by name); a gene is ``common`` while the cumulative share of the
    genes before it is below ``common``, ``medium`` below ``medium``, else ``rare``.
    """
    if not 0 < common < medium <= 1:
        raise ConfigError(f"need 0 < common < medium <= 1, got common={common}, medium={medium}.")
    counts = Counter((r.species, r.chain, r.v_gene) for r in records)
    total = sum(counts.values())
    out: dict[GeneKey, str] = {}
    before = 0
    for key, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = before / total
        out[key] = "common" if share < common else "medium" if share < medium else "rare"
        before += c
    return out


def germline_rows(*, heldout: bool, fraction: float = 0.1, seed: int = 0) -> list[dict[str, str]]:
    """Real functional V alleles (human and mouse, H/K/L), as shipped by anarci (gaps removed).

    Args:
        heldout: ``True``: only the held-out genes' alleles; ``False``: only the other genes'.
        fraction: Held-out fraction of the rule.
        seed: Seed of the rule.
    """
    held = heldout_genes(fraction, seed)
    table = load_germline_table()["V"]
    rows = []
    for species, chain in OLGA_MODELS:
        for allele in sorted(table[chain].get(species, {})):
            gapped = table[chain][species][allele]
            if v_prefix(gapped) is None:
                continue
            gene = gene_of(allele)
            if ((species, chain, gene) in held) != heldout:
                continue
            rows.append(
                {
                    "id": f"{species}:{allele}",
                    "sequence": gapped.replace("-", ""),
                    "species": species,
                    "chain": chain,
                    "v_gene": gene,
                    "v_family": family_of(gene),
                    "j_gene": "",
                    "cdr3_length": "",
                    "bucket": "unseen" if heldout else "",
                }
            )
    return rows


def _row(r: AntibodyRecord, bucket: str) -> dict[str, str]:
    return {
        "id": r.id,
        "sequence": r.sequence,
        "species": r.species,
        "chain": r.chain,
        "v_gene": r.v_gene,
        "v_family": r.v_family,
        "j_gene": r.j_gene,
        "cdr3_length": str(r.cdr3_length),
        "bucket": bucket,
    }


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*COLUMNS, "bucket"], delimiter="\t")
        w.writeheader()
        w.writerows(rows)


def write_task_data(
    folder: str | os.PathLike[str],
    corpus: Sequence[AntibodyRecord],
    config: RepertoireConfig,
    *,
    n_train: int = 2000,
    n_test: int = 1000,
) -> dict[str, Path]:
    """Write ``train.tsv``, ``train-simulated.tsv``, ``test-simulated.tsv``, ``test-germline.tsv``
    and ``mlm.tsv``.

    Args:
        folder: Output folder (created).
        corpus: The pretraining corpus (its sequences are excluded; its gene usage sets buckets).
        config: The corpus's config; the held-out draws use ``seed + 1`` and its held-out rule.
        n_train: Simulated training domains.
        n_test: Simulated test domains.

    Returns:
        File name stem → path.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    extra, _ = build_repertoire(
        attrs.evolve(config, n=n_train + n_test, seed=config.seed + 1, id_prefix="ho"),
        exclude={r.sequence for r in corpus},
    )
    buckets = frequency_buckets(corpus)
    simulated = [_row(r, "") for r in extra[:n_train]]
    train = simulated + germline_rows(
        heldout=False, fraction=config.heldout_fraction, seed=config.heldout_seed
    )
    sim = [_row(r, buckets.get((r.species, r.chain, r.v_gene), "rare")) for r in extra[n_train:]]
    germ = germline_rows(heldout=True, fraction=config.heldout_fraction, seed=config.heldout_seed)
    paths = {
        "train": out / "train.tsv",
        "train-simulated": out / "train-simulated.tsv",
        "test-simulated": out / "test-simulated.tsv",
        "test-germline": out / "test-germline.tsv",
        "mlm": out / "mlm.tsv",
    }
    for name, rows in (
        ("train", train),
        ("train-simulated", simulated),
        ("test-simulated", sim),
        ("test-germline", germ),
        ("mlm", sim + germ),
    ):
        _write(paths[name], rows)
    return paths
