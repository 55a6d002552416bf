"""torchrun scaling: does every rank get work at default settings?

``--n`` (1,500) Rfam 14.2 seed sequences (a seeded random sample of the shared corpus) are scored by
``biocoreset.api.score_to_file`` with an ``EsmForMaskedLM`` of 4 layers × 128 (float32) at the
library defaults (diagonal Fisher on the default ``D_sub``, self-influence, batch 16), three ways,
each under ``torchrun --standalone`` with one thread per process:

* 1 process;
* 2 ranks with the default shard size (sized from N and the number of ranks: ~4 shards per rank);
* 2 ranks with ``shard_size=4096`` (the default before: 256 batches, so 1,500 rows are one shard).

Every rank times its ``score_to_file`` call (wall and CPU); the slowest rank's wall time is the
run's time. The speed-up is the 1-process time over the 2-rank time (target: ≥ 0.85·R = 1.7×).
The *CPU speed-up* — the 1-process CPU time over the busiest rank's — is how the work is split; on
a machine shared with other jobs it is the figure that load does not distort (communication and
waiting excluded).
Scores of the runs must agree (printed: max relative difference). Runs are interleaved
``--repeats`` times and the fastest of each kind counts.

Run::

    python benchmarks/bench_ranks.py                  # ~5 min per repeat on 2 idle cores
    python benchmarks/bench_ranks.py --n 600 --repeats 1

Results are recorded in ``docs/benchmarks-scale.md``. The machines are shared: the script prints
the load average before and after; a fair figure needs an idle machine (load < 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RFAM = SHARED / "rna" / "corpus" / "rfam14.2_seed_sequences.fasta.gz"
RNA_TOKENS = ["<cls>", "<pad>", "<eos>", "<unk>", *"ACGURYKMSWBDHVN", "<mask>"]


def make_inputs(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """A corpus of ``n`` random Rfam records and a saved 4 × 128 model folder."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    from biocoreset.data.sources import open_sequences
    from biocoreset.data.synthetic import write_fasta

    records = list(open_sequences(RFAM))
    pick = np.sort(np.random.default_rng(seed).choice(len(records), size=n, replace=False))
    corpus = write_fasta([records[i] for i in pick.tolist()], folder / "corpus.fa")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(RNA_TOKENS) + "\n")
    tokenizer = EsmTokenizer(vocab_file=str(vocab))
    config = EsmConfig(
        vocab_size=len(RNA_TOKENS),
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=1026,
        position_embedding_type="absolute",
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        emb_layer_norm_before=True,
        token_dropout=False,
    )
    torch.manual_seed(seed)
    model_dir = folder / "model"
    EsmForMaskedLM(config).eval().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return corpus, model_dir


def worker(corpus: str, model_dir: str, output: str, shard_size: int | None) -> None:
    """Run under torchrun: score, time every rank, rank 0 writes ``output + .json``."""
    from biocoreset.api import score_to_file
    from biocoreset.modelio import load_model
    from biocoreset.runtime.distributed import init_distributed

    ctx = init_distributed()
    adapter = load_model(model_dir, adapter="hf")
    ctx.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    options = {} if shard_size is None else {"shard_size": shard_size}
    meta = score_to_file(adapter, corpus, output, progress=False, force=True, **options)
    ctx.barrier()
    mine = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    times = ctx.all_gather_object(mine)
    if ctx.is_main:
        report = {
            "ranks": times,
            "shard_size": meta["shard_size"],
            "world_size": meta["world_size"],
            "timing": meta["timing"],
        }
        Path(output + ".json").write_text(json.dumps(report))
    if ctx.is_distributed:
        import torch.distributed

        torch.distributed.destroy_process_group()


def launch(nproc: int, corpus: Path, model_dir: Path, output: Path, shard: int | None) -> dict:
    env = dict(
        os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore",
    )  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", __file__, "--worker", str(corpus), str(model_dir),
        str(output),
    ]  # fmt: skip
    if shard is not None:
        cmd += ["--shard-size", str(shard)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    report = json.loads(Path(str(output) + ".json").read_text())
    report["command_wall"] = wall
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=3, metavar=("CORPUS", "MODEL", "OUTPUT"))
    parser.add_argument("--shard-size", type=int)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.shard_size)
        return 0
    from biocoreset import load_scores

    folder = Path(tempfile.mkdtemp(prefix="bench-ranks-"))
    corpus, model_dir = make_inputs(folder, args.n, args.seed)
    kinds = {
        "1 process": (1, None),
        "2 ranks, default shards": (2, None),
        "2 ranks, shard_size=4096 (old default)": (2, 4096),
    }
    print(f"N = {args.n}, load average before: {os.getloadavg()[0]:.2f}")
    best: dict[str, dict] = {}
    for rep in range(args.repeats):
        for name, (nproc, shard) in kinds.items():
            out = folder / f"{name.split(',')[0].replace(' ', '-')}-{shard}.parquet"
            r = launch(nproc, corpus, model_dir, out, shard)
            r["time"] = max(x["wall"] for x in r["ranks"])
            r["cpu"] = max(x["cpu"] for x in r["ranks"])
            r["output"] = out
            print(
                f"  run {rep + 1} {name:40s} {r['time']:6.1f} s (ranks: "
                + ", ".join(f"{x['wall']:.1f} s wall / {x['cpu']:.1f} s CPU" for x in r["ranks"])
                + f"; shard_size {r['shard_size']}; command {r['command_wall']:.1f} s)"
            )
            if name not in best or r["time"] < best[name]["time"]:
                best[name] = r
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    one = best["1 process"]["time"]
    one_cpu = best["1 process"]["cpu"]
    print(
        "| run | shard size | shards | wall s (slowest rank) | speed-up | CPU s (busiest rank) "
        "| CPU speed-up | command s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in best.items():
        shards = -(-args.n // r["shard_size"])
        print(
            f"| {name} | {r['shard_size']} | {shards} | {r['time']:.1f} | {one / r['time']:.2f}× "
            f"| {r['cpu']:.1f} | {one_cpu / r['cpu']:.2f}× | {r['command_wall']:.1f} |"
        )
    ref = load_scores(best["1 process"]["output"])
    for name, r in best.items():
        got = load_scores(r["output"])
        rel = np.max(np.abs(got.scores - ref.scores) / np.abs(ref.scores))
        print(f"max relative difference of the scores, {name} vs 1 process: {rel:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
