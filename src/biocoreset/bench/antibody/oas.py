"""A simulated repertoire written as an Observed Antibody Space (OAS) data unit.

OAS distributes each study as a gzip-compressed CSV "data unit": the first line is a JSON object
of the unit's metadata, written as one quoted CSV field; the header row follows, with AIRR
columns (``sequence_alignment_aa``, ``v_call``, ``j_call``, ``Redundancy``, ``ANARCI_status``...)
and **no id column**. OAS itself cannot be downloaded on every machine, so this module writes the
repertoire of :func:`~biocoreset.bench.antibody.repertoire.build_repertoire` in that layout, to try
the reading path (``biocoreset score unit.csv.gz``) end to end.

The columns are those the builder knows: ``locus``, ``productive``, ``v_call`` and ``j_call``
(gene names: the builder keeps no allele), ``d_call`` (empty), ``sequence_alignment_aa``, ``junction_aa_length`` (the CDR3 length + 2),
``Redundancy`` (1) and ``ANARCI_status`` (empty). A unit is one species and one chain type, as in
OAS (``--species``, ``--chains``).

From the shell::

    python -m biocoreset.bench.antibody.oas -o human_heavy.csv.gz --n 300 --species human --chains H

>>> import csv, gzip, io, json, tempfile, os
>>> rec = AntibodyRecord(id="ab1", sequence="EVQL", species="human", chain="H",
...                      v_gene="IGHV3-23", j_gene="IGHJ4", cdr3_length=12)
>>> path = os.path.join(tempfile.mkdtemp(), "u.csv.gz")
>>> _ = write_oas_unit([rec], path, metadata={"Run": "sim"})
>>> rows = list(csv.reader(io.TextIOWrapper(gzip.open(path), encoding="utf-8")))
>>> json.loads(rows[0][0])["Run"], rows[1][:3], rows[2][5]
('sim', ['locus', 'productive', 'v_call'], 'EVQL')
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biocoreset.bench.antibody.repertoire import (
    DEFAULT_MIX,
    OLGA_MODELS,
    AntibodyRecord,
    RepertoireConfig,
    build_repertoire,
)
from biocoreset.errors import BioCoresetError, ConfigError
from biocoreset.store.atomic import atomic_path

__all__ = ["OAS_COLUMNS", "main", "oas_metadata", "write_oas_unit"]

OAS_COLUMNS = (
    "locus",
    "productive",
    "v_call",
    "d_call",
    "j_call",
    "sequence_alignment_aa",
    "junction_aa_length",
    "Redundancy",
    "ANARCI_status",
)
_LOCUS = {"H": "IGH", "K": "IGK", "L": "IGL"}
_CHAIN = {"H": "Heavy", "K": "Light", "L": "Light"}


def oas_metadata(records: Sequence[AntibodyRecord], **extra: Any) -> dict[str, Any]:
    """The unit's metadata line, with OAS's keys where the simulation has a value."""
    species = sorted({r.species for r in records})
    chains = sorted({_CHAIN[r.chain] for r in records})
    meta: dict[str, Any] = {
        "Run": "simulated",
        "Link": "",
        "Author": "biocoreset repertoire builder (OLGA recombination models, anarci germlines)",
        "Species": species[0] if len(species) == 1 else ",".join(species),
        "BSource": "simulated",
        "BType": "simulated",
        "Chain": chains[0] if len(chains) == 1 else ",".join(chains),
        "Isotype": "",
        "Unique sequences": len({r.sequence for r in records}),
        "Total sequences": len(records),
    }
    meta.update(extra)
    return meta


def _row(r: AntibodyRecord) -> list[str]:
    return [
        _LOCUS[r.chain],
        "T",
        r.v_gene,
        "",
        r.j_gene,
        r.sequence,
        str(r.cdr3_length + 2),
        "1",
        "",
    ]


def write_oas_unit(
    records: Sequence[AntibodyRecord],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Write ``records`` as an OAS data unit (gzip CSV: metadata line, header, rows; no ids).

    The file is written whole or not at all (a temporary sibling, renamed).

    Raises:
        ConfigError: No records, or ``path`` exists and ``force`` is false.
    """
    if not records:
        raise ConfigError("no records to write: an OAS unit needs at least one sequence.")
    meta = dict(metadata) if metadata is not None else oas_metadata(records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([json.dumps(meta)])
    writer.writerow(OAS_COLUMNS)
    writer.writerows(_row(r) for r in records)
    # no file name and mtime 0 in the gzip header: the same records give the same bytes
    with (
        atomic_path(path, force=force) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as fh,
    ):
        fh.write(buf.getvalue().encode("utf-8"))
    return Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m biocoreset.bench.antibody.oas -o FILE.csv.gz [...]``; prints one line."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m biocoreset.bench.antibody.oas",
        description="Write a simulated repertoire (OLGA + anarci) as an OAS data unit (.csv.gz).",
    )
    ap.add_argument("-o", "--output", required=True, help="the unit to write (.csv.gz)")
    ap.add_argument("--n", type=int, default=1000, help="sequences (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="OLGA sampling seed (default 0)")
    ap.add_argument("--species", default="human", help="human or mouse (default human)")
    ap.add_argument("--chains", default="H", help="H, or light chains K,L (default H)")
    ap.add_argument(
        "--run", default=None, help="the metadata's Run name (default simulated-<seed>)"
    )
    ap.add_argument("--force", action="store_true", help="replace an existing output file")
    args = ap.parse_args(argv)
    try:
        chains = [c.strip() for c in args.chains.split(",") if c.strip()]
        if not chains or set(chains) - set(_LOCUS):
            raise ConfigError(f"--chains {args.chains!r}: use H, or K and/or L (e.g. K,L).")
        if len({_CHAIN[c] for c in chains}) > 1:
            raise ConfigError(
                f"--chains {args.chains!r}: an OAS unit holds one chain type; write heavy (H) and "
                "light (K,L) units separately."
            )
        species = sorted({s for s, _ in OLGA_MODELS})
        if args.species not in species:
            raise ConfigError(f"--species {args.species!r}: choose one of {', '.join(species)}.")
        models = [OLGA_MODELS[(args.species, c)] for c in chains]
        cfg = RepertoireConfig(n=args.n, seed=args.seed, mix={m: DEFAULT_MIX[m] for m in models})
        records, _ = build_repertoire(cfg)
        run = args.run or f"simulated-{args.seed}"
        write_oas_unit(
            records, args.output, metadata=oas_metadata(records, Run=run), force=args.force
        )
    except (BioCoresetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(records)} sequences -> {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
