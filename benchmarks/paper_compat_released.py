"""``paper-compat`` beside the released bio-coreset code itself, on the same model and sequences.

The released code (victor-yifanwu/bio-coreset, ``coreset/``) is run as published: its
``model_override.rna_fm_t12`` loads an RNA-FM checkpoint in the official format, ``get_inf``'s
``calc_influence`` scores every sequence (writing ``result/inf_scores.npy``), and the
``monotonic_sampling_numpy`` / ``stratified_sampling_numpy`` functions of ``get_coreset_index.py``
select (the file's module-level driver, hard-wired to 200,000 of 20M sequences, is not run; its
functions are taken from the file unchanged). Three things of the environment are set, none of the
code: ``transformers.AdamW`` (imported but unused by ``get_inf.py``, removed in transformers 5) is
provided, ``argparse.Namespace`` is allowed in its ``torch.load`` (torch >= 2.6 loads with
``weights_only=True``), and ``sys.argv`` holds the script's arguments while ``get_inf`` is imported.

biocoreset then scores the same checkpoint and sequences with the ``paper-compat`` preset and
selects with ``select(..., preset options)``. The script reports the largest relative score
difference and, for Top-I and CCI at each budget, how many selected sequences the two share.

The released code is not part of biocoreset; pass the folder that holds its ``coreset/*.py``
(e.g. a checkout of the repository, or files extracted from a snapshot)::

    git -C /path/to/bio-coreset-snapshot show HEAD:coreset/get_inf.py > /tmp/released/get_inf.py  # etc.
    python -m benchmarks.paper_compat_released --released /tmp/released --n 200 \\
        --output docs/paper-compat-released.md

It needs the ``rna-fm`` package (module ``fm``), which the released code imports.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gzip
import io
import os
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from benchmarks._common import importable_from

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "rna"
    / "corpus"
    / "rfam14.2_seed_sequences.fasta.gz"
)
RELEASED_FILES = ("get_inf.py", "influence.py", "model_override.py", "get_coreset_index.py")


def read_sequences(path: Path, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` records spread over the corpus (a seeded sample), upper-case as stored."""
    opener = gzip.open if path.suffix == ".gz" else open
    records: list[tuple[str, str]] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        rid, parts = None, []
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if rid is not None:
                    records.append((rid, "".join(parts)))
                rid, parts = line[1:].split()[0], []
            elif line:
                parts.append(line)
        if rid is not None:
            records.append((rid, "".join(parts)))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(records), size=min(n, len(records)), replace=False))
    return [records[i] for i in pick.tolist()]


def load_released(folder: Path) -> tuple[types.ModuleType, types.ModuleType, dict]:
    """Import the released modules unchanged (see the module docs for the environment)."""
    missing = [f for f in RELEASED_FILES if not (folder / f).is_file()]
    if missing:
        raise SystemExit(f"{folder} lacks {', '.join(missing)} of the released coreset/ folder")
    import transformers

    if not hasattr(transformers, "AdamW"):
        transformers.AdamW = torch.optim.AdamW  # imported, never used, by get_inf.py
    argv, env = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = ["get_inf.py"]
    # the released modules import each other by name: all of them are imported here, while their
    # folder is importable, so that a later import by name finds them in sys.modules
    with importable_from(folder):
        try:
            import get_inf
            import influence  # noqa: F401
            import model_override
        finally:
            sys.argv = argv
            if env is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = env
        # get_coreset_index.py: its functions, unchanged; not its driver (hard-wired to 200k of 20M)
        tree = ast.parse((folder / "get_coreset_index.py").read_text(encoding="utf-8"))
        tree.body = [
            n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))
        ]
        selectors: dict = {}
        exec(compile(tree, str(folder / "get_coreset_index.py"), "exec"), selectors)
    return get_inf, model_override, selectors


def run_released(get_inf, model_override, checkpoint: Path, seqs: list[str], dtype) -> np.ndarray:
    with torch.serialization.safe_globals([argparse.Namespace]):
        model, alphabet = model_override.rna_fm_t12(str(checkpoint))
    model = model.to(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        (Path(tmp) / "result").mkdir()
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
                get_inf.calc_influence(
                    model, alphabet.get_batch_converter(), seqs, batch_size=20, window_size=1024
                )
            return np.load(Path(tmp) / "result" / "inf_scores.npy")
        finally:
            os.chdir(cwd)


def run_ours(checkpoint: Path, records: list[tuple[str, str]], dtype: str):
    from biocoreset import score
    from biocoreset.adapters.rnafm import make_rnafm_adapter
    from biocoreset.config.presets import get_preset

    preset = get_preset("paper-compat")
    adapter = make_rnafm_adapter(checkpoint=checkpoint, dtype=dtype, **preset.adapter_options)
    return score(adapter, records, config=preset.score, batch_size=20, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--released", type=Path, required=True, help="folder with the released coreset/*.py"
    )
    ap.add_argument("--corpus", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.05])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", type=Path, default=None, help="write a Markdown report here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from biocoreset import select
    from biocoreset.adapters.rnafm_checkpoint import save_rnafm_checkpoint
    from biocoreset.adapters.rnafm_model import build_rnafm
    from biocoreset.config.presets import get_preset

    get_inf, model_override, released_sel = load_released(args.released)
    records = read_sequences(args.corpus, args.n, seed=0)
    seqs = [s for _, s in records]
    torch.manual_seed(0)
    size = dict(
        num_hidden_layers=args.layers,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_attention_heads=max(1, args.hidden // 32),
    )
    model = build_rnafm(size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    preset = get_preset("paper-compat")
    lines = [
        "# `paper-compat` beside the released bio-coreset code",
        "",
        f"Released code: `{args.released}` (`coreset/` of victor-yifanwu/bio-coreset, run unchanged; "
        "see `benchmarks/paper_compat_released.py`). Model: RNA-FM architecture "
        f"{args.layers} layers × {args.hidden}, random weights, official checkpoint format. "
        f"Sequences: {len(records)} records sampled from `{args.corpus.name}` "
        f"({min(map(len, seqs))}–{max(map(len, seqs))} nt, "
        f"{sum(len(s) > 1022 for s in seqs)} longer than 1,022). Torch {torch.__version__}, "
        f"numpy {np.__version__}, {args.threads} threads.",
        "",
        "| precision | max relative score difference | selection | budget | shared with the released set | seconds (released / biocoreset) |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_rnafm_checkpoint(model, Path(tmp) / "RNA-FM_pretrained.pth")
        for dtype_name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
            t0 = time.perf_counter()
            ref = run_released(get_inf, model_override, checkpoint, seqs, dtype)
            t_ref = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours = run_ours(checkpoint, records, dtype_name)
            t_ours = time.perf_counter() - t0
            rel = float(np.max(np.abs(ours.scores - ref) / np.abs(ref)))
            for frac in args.budgets:
                k = int(frac * len(records))
                with contextlib.redirect_stdout(io.StringIO()):  # the released code prints
                    released = (
                        ("Top-I", released_sel["monotonic_sampling_numpy"](ref, k)),
                        (
                            "CCI",
                            released_sel["stratified_sampling_numpy"](
                                ref, k, stratas=50, seed=42, exclude_lowest_ratio=0.1
                            ),
                        ),
                    )
                for method, expected in released:
                    name = "topk" if method == "Top-I" else "cci"
                    got = select(ours, name, budget=k, seed=42, **preset.options_for(name))
                    shared = len(set(got.indices.tolist()) & set(np.asarray(expected).tolist()))
                    line = (
                        f"| {dtype_name} | {rel:.2e} | {method} | {k} | {shared} of {len(expected)} "
                        f"| {t_ref:.1f} / {t_ours:.1f} |"
                    )
                    print(line, flush=True)
                    lines.append(line)
    lines += [
        "",
        "Command: `python -m benchmarks.paper_compat_released --released <coreset folder> "
        + " ".join(
            f"{k} {v}"
            for k, v in (("--n", args.n), ("--layers", args.layers), ("--hidden", args.hidden))
        )
        + "`",
        "",
    ]
    if args.output is not None:
        args.output.write_text("\n".join(lines), encoding="utf-8")
        print(f"-> {args.output}")


if __name__ == "__main__":
    main()
