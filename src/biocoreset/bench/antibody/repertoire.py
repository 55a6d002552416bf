"""A simulated antibody repertoire: OLGA's recombination models with anarci's germline genes.

Each record is a full variable domain: the germline V amino acids up to the conserved Cys (IMGT
104, not included), the CDR3 that OLGA generates (from that Cys to the J's W/F at IMGT 118), then the
germline J after the CDR3 (from the G of the ``[WF]G.G`` motif). V and J choice, deletions and
insertions come from OLGA's models fitted to real repertoires (``olga/default_models``:
``{human,mouse}_B_{heavy,kappa,lambda}``); the framework amino acids come from ``anarci``'s IMGT
germlines. No somatic hypermutation is added (see docs/antibody-corpus.md).

A seeded rule holds out a tenth of the V genes (:func:`heldout_genes`): the corpus never contains
them, nor any record whose V part equals a held-out allele's, so their real germline alleles are
unseen test data.

>>> rec = AntibodyRecord(id="ab1", sequence="QVQC", species="human", chain="H",
...     v_gene="IGHV1-18", j_gene="IGHJ4", cdr3_length=12)
>>> parse_header(rec.header())["v_gene"]
'IGHV1-18'
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from biocoreset.bench.antibody.germlines import family_of, gene_of, load_germline_table
from biocoreset.errors import ConfigError, InputError
from biocoreset.store.atomic import atomic_path

__all__ = [
    "OLGA_MODELS",
    "AntibodyRecord",
    "BuildReport",
    "RepertoireConfig",
    "build_repertoire",
    "heldout_genes",
    "j_suffix",
    "parse_header",
    "read_repertoire",
    "translate",
    "v_prefix",
    "write_fasta",
]

#: (species, chain) → OLGA default model folder.
OLGA_MODELS: dict[tuple[str, str], str] = {
    ("human", "H"): "human_B_heavy",
    ("human", "K"): "human_B_kappa",
    ("human", "L"): "human_B_lambda",
    ("mouse", "H"): "mouse_B_heavy",
    ("mouse", "K"): "mouse_B_kappa",
    ("mouse", "L"): "mouse_B_lambda",
}

#: Default share of each model in the corpus: half heavy chains; light chains kappa:lambda about
#: 60:40 in human and 95:5 in mouse (the usual serum ratios); species half and half.
DEFAULT_MIX: dict[str, float] = {
    "human_B_heavy": 0.25,
    "human_B_kappa": 0.15,
    "human_B_lambda": 0.10,
    "mouse_B_heavy": 0.25,
    "mouse_B_kappa": 0.2375,
    "mouse_B_lambda": 0.0125,
}

_J_MOTIF = re.compile(r"[WF]G.G")
_BASES = "TCAG"
_CODE = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
_CODONS = {
    a + b + c: _CODE[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}
#: Least identity (aligned at the Cys / at the W/F) for a sequence match of an OLGA allele.
MIN_IDENTITY = 0.9
_CYS104 = 103  # 0-based index of IMGT position 104 in anarci's gapped V strings
HEADER_FIELDS = ("species", "chain", "v_gene", "j_gene", "cdr3_length")


@attrs.frozen(kw_only=True)
class RepertoireConfig:
    """What :func:`build_repertoire` builds.

    Attributes:
        n: Number of records kept.
        seed: Seed of the model choice and of OLGA's sampling.
        mix: OLGA model folder → share of the records (normalised).
        heldout_fraction: Share of V genes held out of the corpus (:func:`heldout_genes`).
        heldout_seed: Seed of that rule (independent of ``seed``, so every split agrees).
        id_prefix: Record ids are ``{id_prefix}{k:06d}``.
    """

    n: int = attrs.field(default=20_000)
    seed: int = 0
    mix: dict[str, float] = attrs.field(factory=lambda: dict(DEFAULT_MIX))
    heldout_fraction: float = 0.1
    heldout_seed: int = 0
    id_prefix: str = "ab"

    @n.validator
    def _check_n(self, attribute: Any, value: int) -> None:
        if int(value) < 1:
            raise ConfigError(f"n={value!r}: the repertoire needs at least one record.")

    def __attrs_post_init__(self) -> None:
        known = set(OLGA_MODELS.values())
        bad = sorted(set(self.mix) - known)
        if bad or not self.mix or any(v < 0 for v in self.mix.values()):
            raise ConfigError(
                f"mix={self.mix!r}: keys must be among {sorted(known)} with non-negative shares."
            )
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ConfigError(f"heldout_fraction={self.heldout_fraction!r}: use a value in [0, 1).")


@attrs.frozen(kw_only=True)
class AntibodyRecord:
    """One variable domain and its labels."""

    id: str
    sequence: str
    species: str
    chain: str
    v_gene: str
    j_gene: str
    cdr3_length: int

    @property
    def v_family(self) -> str:
        """``IGHV1-18`` → ``IGHV1``."""
        return family_of(self.v_gene)

    def header(self) -> str:
        """``id species=human chain=H v_gene=IGHV1-18 j_gene=IGHJ4 cdr3_length=12``."""
        return f"{self.id} " + " ".join(f"{k}={getattr(self, k)}" for k in HEADER_FIELDS)


@attrs.frozen(kw_only=True)
class BuildReport:
    """Counts of one build: what was drawn, kept and dropped (by reason), and the name mapping.

    Attributes:
        drawn: OLGA draws made.
        kept: Records kept.
        dropped: Reason → count (``unmapped-v``, ``unmapped-j``, ``heldout``, ``no-cys``, ``stop``,
            ``no-j-motif``, ``bad-cdr3``, ``duplicate-of-excluded``).
        mapping: Per model: OLGA V/J alleles, mapped exactly, mapped by gene, unmapped.
    """

    drawn: int
    kept: int
    dropped: dict[str, int]
    mapping: dict[str, dict[str, int]]


def _unit_hash(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def v_prefix(gapped: str) -> str | None:
    """The V amino acids before the conserved Cys (IMGT 104), or ``None`` (no Cys, a stop, an X)."""
    if len(gapped) <= _CYS104 or gapped[_CYS104] != "C":
        return None
    prefix = gapped[:_CYS104].replace("-", "")
    return None if ("*" in prefix or "X" in prefix or not prefix) else prefix


def j_suffix(gapped: str) -> str | None:
    """The J amino acids after the W/F of the ``[WF]G.G`` motif (IMGT 118), or ``None``."""
    j = gapped.replace("-", "")
    m = _J_MOTIF.search(j)
    if m is None or "*" in j:
        return None
    return j[m.start() + 1 :]


def translate(nt: str) -> str:
    """Amino acids of ``nt`` read from its first base (``X`` for codons with other letters)."""
    nt = nt.upper()
    return "".join(_CODONS.get(nt[i : i + 3], "X") for i in range(0, len(nt) - 2, 3))


def _identity(a: str, b: str, *, from_end: bool) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return 0.0
    x, y = (a[-n:], b[-n:]) if from_end else (a[:n], b[:n])
    return sum(p == q for p, q in zip(x, y, strict=True)) / max(len(a), len(b))


def heldout_genes(fraction: float = 0.1, seed: int = 0) -> set[tuple[str, str, str]]:
    """``(species, chain, V gene)`` held out of the corpus by a seeded hash rule.

    Only genes whose family has at least three functional genes in that species and chain are
    candidates, so the family of every held-out gene is still seen in training. Human and mouse,
    heavy, kappa and lambda.
    """
    table = load_germline_table()["V"]
    out: set[tuple[str, str, str]] = set()
    for species, chain in OLGA_MODELS:
        alleles = table[chain].get(species, {})
        genes = sorted({gene_of(a) for a, s in alleles.items() if v_prefix(s) is not None})
        per_family = Counter(family_of(g) for g in genes)
        for g in genes:
            if per_family[family_of(g)] >= 3 and _unit_hash(seed, species, chain, g) < fraction:
                out.add((species, chain, g))
    return out


class _Model:
    """One OLGA model with the OLGA→anarci name mapping of its V and J alleles."""

    def __init__(self, folder: str, heldout: set[tuple[str, str, str]]) -> None:
        import olga
        import olga.load_model as load_model
        import olga.sequence_generation as generation

        species, _, kind = folder.split("_")
        self.species = species
        self.chain = {"heavy": "H", "kappa": "K", "lambda": "L"}[kind]
        path = os.path.join(os.path.dirname(olga.__file__), "default_models", folder)
        files = [os.path.join(path, f) for f in ("model_params.txt", "V_gene_CDR3_anchors.csv")]
        j_anchor = os.path.join(path, "J_gene_CDR3_anchors.csv")
        marginals = os.path.join(path, "model_marginals.txt")
        data: Any
        model: Any
        if self.chain == "H":
            data, model = load_model.GenomicDataVDJ(), load_model.GenerativeModelVDJ()
            data.load_igor_genomic_data(files[0], files[1], j_anchor)
            model.load_and_process_igor_model(marginals)
            self.gen = generation.SequenceGenerationVDJ(model, data)
        else:
            data, model = load_model.GenomicDataVJ(), load_model.GenerativeModelVJ()
            data.load_igor_genomic_data(files[0], files[1], j_anchor)
            model.load_and_process_igor_model(marginals)
            self.gen = generation.SequenceGenerationVJ(model, data)
        table = load_germline_table()
        anchors = {
            seg: _anchors(os.path.join(path, f"{seg}_gene_CDR3_anchors.csv")) for seg in "VJ"
        }
        v_aa = [_olga_v_aa(g[0], g[2], anchors["V"]) for g in data.genV]
        j_aa = [_olga_j_aa(g[0], g[2], anchors["J"]) for g in data.genJ]
        v_table = {a: v_prefix(s) for a, s in table["V"][self.chain][species].items()}
        j_table = {a: _j_from_motif(s) for a, s in table["J"][self.chain][species].items()}
        self.v, self.v_mode = self._map([g[0] for g in data.genV], v_aa, v_table, from_end=True)
        self.j, self.j_mode = self._map([g[0] for g in data.genJ], j_aa, j_table, from_end=False)
        self.heldout = {g for s, c, g in heldout if s == species and c == self.chain}

    @staticmethod
    def _map(
        names: list[str],
        olga_aa: list[str | None],
        alleles: dict[str, str | None],
        *,
        from_end: bool,
    ) -> tuple[list[str | None], list[str]]:
        """OLGA allele → anarci allele: the same name; else the same gene's first allele; else
        (OLGA's mouse models use anonymous names) the allele whose amino acids match best, aligned
        at the conserved Cys (V) or W/F (J), if at least :data:`MIN_IDENTITY` of them agree."""
        by_gene: dict[str, list[str]] = {}
        for a in sorted(alleles):
            by_gene.setdefault(gene_of(a), []).append(a)
        out: list[str | None] = []
        mode: list[str] = []
        for name, aa in zip(names, olga_aa, strict=True):
            if name in alleles:
                out.append(name)
                mode.append("exact")
            elif gene_of(name) in by_gene:
                out.append(by_gene[gene_of(name)][0])
                mode.append("gene")
            else:
                best, score = None, 0.0
                for a in sorted(alleles):
                    ref = alleles[a]
                    if aa and ref:
                        s = _identity(aa, ref, from_end=from_end)
                        if s > score:
                            best, score = a, s
                ok = best is not None and score >= MIN_IDENTITY
                out.append(best if ok else None)
                mode.append("sequence" if ok else "unmapped")
        return out, mode

    def mapping(self) -> dict[str, int]:
        out = {"v_alleles": len(self.v), "j_alleles": len(self.j)}
        for seg, modes in (("v", self.v_mode), ("j", self.j_mode)):
            for m in ("exact", "gene", "sequence", "unmapped"):
                out[f"{seg}_{m}"] = modes.count(m)
        return out


def _anchors(path: str) -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh.read().splitlines()[1:]:
            parts = line.split(",")
            if len(parts) >= 2 and parts[1].strip().lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    return out


def _olga_v_aa(name: str, nt: str, anchors: dict[str, int]) -> str | None:
    """OLGA's V amino acids before the Cys codon at its CDR3 anchor."""
    a = anchors.get(name, -1)
    if a < 3 or a > len(nt):
        return None
    return translate(nt[a % 3 : a])


def _olga_j_aa(name: str, nt: str, anchors: dict[str, int]) -> str | None:
    """OLGA's J amino acids from the W/F codon at its CDR3 anchor."""
    a = anchors.get(name, -1)
    return translate(nt[a:]) if 0 <= a < len(nt) else None


def _j_from_motif(gapped: str) -> str | None:
    suffix = j_suffix(gapped)
    if suffix is None:
        return None
    j = gapped.replace("-", "")
    return j[len(j) - len(suffix) - 1 :]


def _excluded_prefixes(heldout: set[tuple[str, str, str]]) -> set[str]:
    table = load_germline_table()["V"]
    out = set()
    for species, chain, gene in heldout:
        for allele, gapped in table[chain][species].items():
            p = v_prefix(gapped)
            if gene_of(allele) == gene and p is not None:
                out.add(p)
    return out


def _draws(
    config: RepertoireConfig, exclude: set[str], report: dict[str, Any]
) -> Iterator[AntibodyRecord]:
    heldout = heldout_genes(config.heldout_fraction, config.heldout_seed)
    blocked = _excluded_prefixes(heldout)
    names = sorted(k for k, v in config.mix.items() if v > 0)
    shares = np.asarray([config.mix[k] for k in names], dtype=np.float64)
    shares /= shares.sum()
    with warnings.catch_warnings():  # olga leaves its model files open
        warnings.simplefilter("ignore", ResourceWarning)
        models = {name: _Model(name, heldout) for name in names}
        gc.collect()
    report["mapping"] = {name: m.mapping() for name, m in models.items()}
    table = load_germline_table()
    rng = np.random.default_rng([config.seed, 0xAB])
    dropped: Counter[str] = report["dropped"]
    k = 0
    while True:
        m = models[names[int(rng.choice(len(names), p=shares))]]
        report["drawn"] += 1
        _nt, cdr3, vi, ji = m.gen.gen_rnd_prod_CDR3()
        v_allele, j_allele = m.v[int(vi)], m.j[int(ji)]
        if v_allele is None or j_allele is None:
            dropped["unmapped-v" if v_allele is None else "unmapped-j"] += 1
            continue
        if gene_of(v_allele) in m.heldout:
            dropped["heldout"] += 1
            continue
        prefix = v_prefix(table["V"][m.chain][m.species][v_allele])
        suffix = j_suffix(table["J"][m.chain][m.species][j_allele])
        if prefix is None:
            dropped[
                "no-cys" if "*" not in table["V"][m.chain][m.species][v_allele] else "stop"
            ] += 1
            continue
        if suffix is None:
            dropped["no-j-motif"] += 1
            continue
        if not (cdr3.startswith("C") and cdr3[-1] in "WF" and "*" not in cdr3):
            dropped["bad-cdr3"] += 1
            continue
        if prefix in blocked:
            dropped["heldout"] += 1
            continue
        sequence = prefix + cdr3 + suffix
        if sequence in exclude:
            dropped["duplicate-of-excluded"] += 1
            continue
        yield AntibodyRecord(
            id=f"{config.id_prefix}{k:06d}",
            sequence=sequence,
            species=m.species,
            chain=m.chain,
            v_gene=gene_of(v_allele),
            j_gene=gene_of(j_allele),
            cdr3_length=len(cdr3),
        )
        k += 1


def build_repertoire(
    config: RepertoireConfig | None = None, *, exclude: set[str] | None = None, **options: Any
) -> tuple[list[AntibodyRecord], BuildReport]:
    """Draw ``config.n`` records (seeded; OLGA's global NumPy state is restored afterwards).

    Args:
        config: A :class:`RepertoireConfig`; keyword ``options`` override its fields.
        exclude: Sequences never to emit (e.g. the corpus, when building a held-out set).

    Raises:
        ConfigError: Bad options, or fewer than one record in 50 draws kept (a broken mapping).
    """
    config = attrs.evolve(config or RepertoireConfig(), **options)
    report: dict[str, Any] = {"drawn": 0, "dropped": Counter(), "mapping": {}}
    state = np.random.get_state()
    np.random.seed(config.seed % 2**32)
    records: list[AntibodyRecord] = []
    try:
        for rec in _draws(config, exclude or set(), report):
            records.append(rec)
            if len(records) >= config.n:
                break
            if report["drawn"] > 50 * (len(records) + 100):
                raise ConfigError(
                    f"only {len(records)} of {report['drawn']} OLGA draws were kept "
                    f"(dropped: {dict(report['dropped'])}); check the anarci/olga versions."
                )
    finally:
        np.random.set_state(state)
    return records, BuildReport(
        drawn=report["drawn"],
        kept=len(records),
        dropped=dict(report["dropped"]),
        mapping=report["mapping"],
    )


def parse_header(header: str) -> dict[str, Any]:
    """The id and labels of a header written by :meth:`AntibodyRecord.header`.

    Raises:
        InputError: A label is missing or the CDR3 length is not an integer.
    """
    parts = header.lstrip(">").split()
    if not parts:
        raise InputError("empty FASTA header: expected 'id species=... chain=... ...'.")
    out: dict[str, Any] = {"id": parts[0]}
    for p in parts[1:]:
        key, sep, value = p.partition("=")
        if sep:
            out[key] = value
    missing = [k for k in HEADER_FIELDS if k not in out]
    if missing:
        raise InputError(f"header {header!r} lacks {missing}; expected key=value labels.")
    try:
        out["cdr3_length"] = int(out["cdr3_length"])
    except ValueError as exc:
        raise InputError(f"header {header!r}: cdr3_length is not an integer.") from exc
    return out


def write_fasta(records: list[AntibodyRecord], path: str | os.PathLike[str]) -> Path:
    """Write ``records`` as FASTA with labelled headers; returns the path."""
    p = Path(path)
    with atomic_path(p, force=True) as tmp:  # whole or not at all
        tmp.write_text("".join(f">{r.header()}\n{r.sequence}\n" for r in records), encoding="utf-8")
    return p


def read_repertoire(path: str | os.PathLike[str]) -> list[AntibodyRecord]:
    """Read a FASTA written by :func:`write_fasta`.

    Raises:
        InputError: A header without labels or a record without a sequence.
    """
    out: list[AntibodyRecord] = []
    header: str | None = None
    seq: list[str] = []
    lines = [*Path(path).read_text(encoding="utf-8").splitlines(), ">"]
    for line in lines:
        if line.startswith(">"):
            if header is not None:
                if not seq:
                    raise InputError(f"{str(path)!r}: record {header!r} has no sequence.")
                h = parse_header(header)
                out.append(AntibodyRecord(sequence="".join(seq), **h))
            header, seq = (line[1:] if line != ">" else None), []
        elif line.strip():
            seq.append(line.strip())
    return out
