"""Reader memory benchmark: FASTA and Parquet side by side, memory flat in N.

The same random RNA records (80–120 nt, seeded) are written as a FASTA file and as a Parquet file
(``--row-group-size`` rows per row group, ``large_string`` columns, as Hugging Face ``datasets``
writes them), at each size of ``--sizes``. Each measurement runs in a fresh process, so that its
peak resident memory is its own; the figure is the *extra* peak: once the libraries (and the model)
are loaded, the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``), and the figure is the
peak mark after the work minus the RSS before it:

1. **read**: stream every record through ``open_sequences(path)`` (the reader the commands use),
   counting records and residues;
2. **score** (sizes ``--score-sizes``): ``score_to_file`` end to end on a tiny ``EsmForMaskedLM``
   (2 layers × 16, float32; ``D_sub`` fixed at ``--subset``) — the index pass, the Fisher fit, the
   scoring pass and the sharded score file. Use sizes above the length-grouping window (1,024
   records), or the window itself grows with N.

Memory is flat in N when the extra peak does not grow with N. The Parquet reader holds one row
group's column chunks at a time, so its figure follows ``--row-group-size``, not N.

Run::

    nice python -m benchmarks.bench_readers                   # both steps: ~10 min on 2 busy cores
    nice python -m benchmarks.bench_readers --score-sizes     # reading only: ~3 min
    nice python -m benchmarks.bench_readers --sizes 200000 --row-group-size 100000 --score-sizes

Results are recorded in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import child_env, module_command, rss_mib


def peak_mark() -> float:
    """The kernel's peak-RSS mark of this process (``VmHWM``, MiB), which :func:`reset_peak_mark`
    can reset (``ru_maxrss`` cannot be)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_mark() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs`` 5); return that RSS."""
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return rss_mib()


def write_corpus(n: int, folder: Path, row_group_size: int, seed: int = 0) -> dict[str, Path]:
    """``n`` random RNA records as ``c{n}.fa`` and ``c{n}.parquet``, written in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGU"))
    fa, pqt = folder / f"c{n}.fa", folder / f"c{n}.parquet"
    schema = pa.schema([("id", pa.large_string()), ("sequence", pa.large_string())])
    with open(fa, "w") as fh, pq.ParquetWriter(pqt, schema) as writer:
        for start in range(0, n, row_group_size):
            count = min(row_group_size, n - start)
            lengths = rng.integers(80, 121, size=count)
            ids = [f"s{start + i}" for i in range(count)]
            seqs = ["".join(letters[rng.integers(0, 4, size=int(k))]) for k in lengths]
            fh.writelines(f">{r}\n{s}\n" for r, s in zip(ids, seqs, strict=True))
            writer.write_table(pa.table({"id": ids, "sequence": seqs}, schema=schema))
    return {"fasta": fa, "parquet": pqt}


def child(task: str, path: str, subset: int) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import pyarrow.parquet  # noqa: F401 - imported before the baseline, as for FASTA's Biopython
    from Bio.SeqIO.FastaIO import SimpleFastaParser  # noqa: F401

    from biocoreset.data.sources import open_sequences

    if task == "score":
        import torch

        from biocoreset.adapters.hf import HFAdapter
        from biocoreset.api import score_to_file
        from biocoreset.testing import tiny_esm

        torch.set_num_threads(1)
        model, tok = tiny_esm(seed=0, dtype=torch.float32, max_positions=130)
        adapter = HFAdapter(model, tok)
    base = reset_peak_mark()
    t0 = time.perf_counter()
    if task == "read":
        records = residues = 0
        for records, (_, seq) in enumerate(open_sequences(path), start=1):  # noqa: B007
            residues += len(seq)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            meta = score_to_file(
                adapter,
                open_sequences(path),
                Path(tmp) / "s.parquet",
                subset=subset,
                batch_size=16,
                progress=False,
            )
        records = meta["num_sequences"]
    seconds = time.perf_counter() - t0
    out = {"records": records, "seconds": seconds, "extra_peak_mib": peak_mark() - base}
    print(json.dumps(out))


def measure(task: str, path: Path, subset: int) -> dict:
    proc = subprocess.run(
        [
            *module_command("benchmarks.bench_readers"),
            *("--_child", task, "--path", str(path), "--subset", str(subset)),
        ],
        capture_output=True,
        text=True,
        env=child_env(OMP_NUM_THREADS="1"),
    )
    if proc.returncode:
        raise SystemExit(f"child {task} {path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[50_000, 200_000, 800_000])
    p.add_argument("--score-sizes", type=int, nargs="*", default=[2_000, 8_000])
    p.add_argument("--row-group-size", type=int, default=10_000)
    p.add_argument("--subset", type=int, default=64, help="D_sub size of the score runs")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        child(args._child, args.path, args.subset)
        return
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, sizes in (("read", args.sizes), ("score", args.score_sizes)):
            for n in sizes:
                files = write_corpus(n, Path(tmp), args.row_group_size)
                for fmt in ("fasta", "parquet"):
                    r = measure(task, files[fmt], args.subset)
                    assert r["records"] == n, r
                    mb = files[fmt].stat().st_size / 2**20
                    rows.append({"task": task, "format": fmt, "n": n, "file_mib": mb, **r})
                    print(
                        f"  {task:<5} {fmt:<7} N={n:>9,}  file {mb:8.1f} MiB  "
                        f"{r['seconds']:7.2f} s  extra peak {r['extra_peak_mib']:7.1f} MiB",
                        flush=True,
                    )
                for f in files.values():
                    f.unlink()
    print("\n| step | format | N | file (MiB) | seconds | extra peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['task']} | {r['format']} | {r['n']:,} | {r['file_mib']:.1f} | "
            f"{r['seconds']:.2f} | {r['extra_peak_mib']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"row_group_size": args.row_group_size, "rows": rows}))


if __name__ == "__main__":
    main()
