"""Helpers shared by the benchmark scripts (run each as ``python -m benchmarks.NAME``).

* the machine: :func:`device_info`, :func:`device_rows`, :func:`peak_for`, :func:`cpu_name`,
  :func:`offline`;
* time: :class:`Timer` (synchronises a CUDA device before and after), :func:`sync`,
  :func:`side_by_side` (several steps timed in turn on the same batches), :func:`fwd_bwd` (the
  plain training step, the floor);
* memory: :func:`rss_mib` / :func:`peak_rss_mib` (the process), :func:`reset_peak` /
  :func:`peak_gib` / :func:`peak_memory_each` / :func:`free_memory` (a CUDA device),
  :func:`is_oom`;
* inputs: :func:`fasta_records`, :func:`fasta_lengths`, :func:`length_source`,
  :func:`sample_lengths`, :func:`length_sorted_batches`;
* models: :func:`esm_mlm` (a small random ``EsmForMaskedLM`` and its tokenizer),
  :func:`build_adapter` (by adapter name, over :func:`biocoreset.modelio.load_model`),
  :func:`attention_of`;
* reports: :func:`fmt`, :func:`markdown_rows`, :func:`markdown_page`, :func:`write_report`
  (markdown, and JSON beside it);
* robustness: :func:`oom_halving` retries a step with half the size after an out-of-memory error;
* child processes: :func:`module_command`, :func:`child_env`;
* imports: :func:`import_file` and :func:`importable_from` load code outside the package (the
  examples, a released code folder) without editing ``sys.path``.

Rank correlations come from :func:`biocoreset.stats.spearman`.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import importlib.machinery
import importlib.util
import json
import math
import os
import platform
import random
import resource
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
"""The shared data folder beside the repository (absent on most machines: scripts say so)."""
RFAM_SEED = Path("data") / "rna" / "corpus" / "rfam14.2_seed_sequences.fasta.gz"
LENGTH_CANDIDATES = (ROOT / "shared" / RFAM_SEED, ROOT.parent / "shared" / RFAM_SEED)
"""Where :func:`length_source` looks for corpus lengths by default (the Rfam 14.2 seed FASTA)."""
#: Log-normal stand-in for the Rfam 14.2 seed lengths (median 94 nt, mean 136 nt).
SYNTHETIC_LENGTHS = {"median": 94.0, "sigma": 0.86, "min": 10}

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against the device name in order.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 PCIE", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def offline() -> None:
    """Default to offline Hugging Face libraries (a benchmark never downloads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cpu_name() -> str:
    """The processor's name, else the machine type (``platform`` leaves the first empty often)."""
    return platform.processor() or platform.machine()


# -- device --------------------------------------------------------------------------------------


def device_info(device: Any, peak_override: float | None = None) -> dict[str, Any]:
    """Name, memory and bf16 peak of ``device`` (every CUDA query guarded)."""
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            info["name"] = torch.cuda.get_device_name(device)
        with contextlib.suppress(Exception):
            free, total = torch.cuda.mem_get_info(device)
            info["memory_gib"] = round(total / 2**30, 1)
            info["free_gib_at_start"] = round(free / 2**30, 1)
        with contextlib.suppress(Exception):
            info["cuda"] = torch.version.cuda
        with contextlib.suppress(Exception):
            info["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    else:
        info["name"] = f"CPU ({cpu_name()})"
    peak, source = peak_for(str(info.get("name", "")), peak_override)
    info["peak_tflops"] = peak
    info["peak_source"] = source
    return info


def peak_for(name: str, override: float | None = None) -> tuple[float | None, str]:
    """The dense bf16 peak (TFLOP/s) of the device called ``name``, and where it comes from.

    >>> peak_for("NVIDIA H200")
    (989.0, 'table (H200, dense bf16)')
    >>> peak_for("NVIDIA H100 PCIe")[0], peak_for("Unknown GPU")[0], peak_for("x", 100.0)[0]
    (756.0, None, 100.0)
    """
    if override:
        return float(override), "--peak-tflops"
    upper = name.upper()
    for key, value in PEAK_BF16_TFLOPS:
        if key in upper:
            return value, f"table ({key}, dense bf16)"
    return None, "unknown device: pass --peak-tflops"


def device_rows(info: Mapping[str, Any], date: str) -> list[tuple[str, str]]:
    """The device table of a report, from :func:`device_info`."""
    peak = f"{fmt(info.get('peak_tflops'), '{:.0f} TFLOP/s')} ({info['peak_source']})"
    return [
        ("device", info.get("name", info["device"])),
        ("memory", fmt(info.get("memory_gib"), "{} GiB")),
        ("torch / CUDA", f"{info['torch']} / {info.get('cuda') or 'n/a'}"),
        ("bf16 peak", peak),
        ("date", date),
    ]


def attention_of(model: Any) -> str:
    """The attention implementation of a transformers model (``esm``'s models use sdpa)."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return str(impl) if impl else "F.scaled_dot_product_attention (esm)"


def fwd_bwd(adapter: Any, device: Any, dtype: Any = None) -> Callable[[Any], None]:
    """A plain training step without the optimiser: forward (under autocast to ``dtype``, if
    given), backward of the summed per-sample loss, gradients dropped. The floor of any scoring."""
    import torch

    trainable = [p for p in adapter.model.parameters() if p.requires_grad]

    def step(batch: Any) -> None:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = adapter.per_sample_loss(batch)
        loss.sum().backward()
        for p in trainable:
            p.grad = None

    return step


def sync(device: Any) -> None:
    """Wait for the work queued on a CUDA ``device`` (nothing to wait for on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of device work: synchronise before and after."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def __call__(self, fn: Callable[[], Any]) -> float:
        sync(self.device)
        t = time.perf_counter()
        fn()
        sync(self.device)
        return time.perf_counter() - t


def side_by_side(
    fns: Mapping[str, Callable[[Any], Any]],
    batches: Sequence[Any],
    timer: Callable[[Callable[[], Any]], float],
    *,
    seconds: float,
    max_rounds: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, float], list[int]]:
    """Time every function of ``fns`` on each batch in turn, cycling over ``batches``.

    The order of the functions rotates from one batch to the next, so none always runs first. It
    stops once ``seconds`` have passed (or after ``max_rounds`` passes over the batches, if set),
    and at least one batch has run. ``progress(count, elapsed)`` is called after each full pass.

    Returns:
        The seconds spent in each function, and the indices of the batches run, in order.
    """
    times: dict[str, float] = dict.fromkeys(fns, 0.0)
    visited: list[int] = []
    start = time.perf_counter()
    order = list(fns)
    while True:
        count = len(visited)
        elapsed = time.perf_counter() - start
        if count and (elapsed >= seconds or (max_rounds and count >= max_rounds * len(batches))):
            break
        k = count % len(batches)
        batch = batches[k]
        for key in order:
            times[key] += timer(lambda key=key, batch=batch: fns[key](batch))
        order = order[1:] + order[:1]
        visited.append(k)
        if progress is not None and len(visited) % max(1, len(batches)) == 0:
            progress(len(visited), time.perf_counter() - start)
    return times, visited


# -- memory --------------------------------------------------------------------------------------


def rss_mib() -> float:
    """This process's resident memory now (MiB, Linux ``/proc``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; ``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA's own class, or its message)."""
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def free_memory(device: Any) -> None:
    """Collect garbage and hand cached CUDA blocks back."""
    import torch

    gc.collect()
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


def reset_peak(device: Any) -> None:
    """Start a new peak-memory count on a CUDA ``device``."""
    import torch

    if device.type == "cuda":
        with contextlib.suppress(Exception):
            torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: Any) -> float | None:
    """Peak allocated memory of a CUDA ``device`` since :func:`reset_peak` (``None`` elsewhere)."""
    import torch

    if device.type != "cuda":
        return None
    try:
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    except Exception:
        return None


def peak_memory_each(
    fns: Mapping[str, Callable[[Any], Any]],
    arg: Any,
    device: Any,
    peaks: dict[str, float | None],
    note: Callable[[str], None],
) -> None:
    """Peak device memory (GiB) of each of ``fns`` called on ``arg``, one at a time, into ``peaks``.

    An out-of-memory error leaves ``None`` and a ``note``; any other error is noted and raised
    (``peaks`` keeps what was measured before it)."""
    for key, fn in fns.items():
        free_memory(device)
        reset_peak(device)
        try:
            fn(arg)
            sync(device)
            peaks[key] = peak_gib(device)
        except Exception as exc:
            peaks[key] = None
            note(f"peak memory of {key} not measured: {type(exc).__name__}: {str(exc)[:120]}")
            if not is_oom(exc):
                raise


# -- inputs --------------------------------------------------------------------------------------


def fasta_lengths(path: Path) -> list[int]:
    """Sequence lengths of a plain or gzipped FASTA file (empty records dropped)."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    lengths, n, seen = [], 0, False
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if seen:
                    lengths.append(n)
                n, seen = 0, True
            else:
                n += len(line.strip())
    if seen:
        lengths.append(n)
    return [x for x in lengths if x > 0]


def fasta_records(path: Path) -> Iterator[tuple[str, str]]:
    """``(id, sequence)`` records of a plain or gzipped FASTA file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        rid, parts = None, []
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if rid is not None:
                    yield rid, "".join(parts)
                rid, parts = line[1:].split()[0], []
            elif line:
                parts.append(line)
        if rid is not None:
            yield rid, "".join(parts)


def length_source(
    path: Path | None, candidates: Sequence[Path] = LENGTH_CANDIDATES
) -> tuple[list[int] | None, str]:
    """The corpus lengths (of ``path``, else the first of ``candidates`` found) and a sentence
    saying where they come from; ``None`` and a sentence saying so when none is found."""
    found = [path] if path is not None else list(candidates)
    for p in found:
        if p is not None and p.is_file():
            lengths = fasta_lengths(p)
            if lengths:
                return lengths, f"{len(lengths):,} sequence lengths of `{p.name}`"
    shown = ", ".join(f"`{p}`" for p in found if p is not None)
    s = SYNTHETIC_LENGTHS
    return None, (
        f"**synthetic** log-normal lengths (median {s['median']:.0f}, sigma {s['sigma']}, at least "
        f"{s['min']}; a fit of the Rfam 14.2 seed lengths) — no FASTA found at {shown}"
    )


def sample_lengths(lengths: list[int] | None, n: int, rng: random.Random) -> list[int]:
    """``n`` lengths drawn from ``lengths``, or from :data:`SYNTHETIC_LENGTHS` when ``None``."""
    if lengths:
        return [rng.choice(lengths) for _ in range(n)]
    s = SYNTHETIC_LENGTHS
    mu = math.log(s["median"])
    return [max(int(s["min"]), round(rng.lognormvariate(mu, s["sigma"]))) for _ in range(n)]


def length_sorted_batches(
    lengths: list[int], letters: str, max_residues: int, max_tokens: int, max_batch: int, seed: int
) -> list[list[tuple[str, str]]]:
    """Random sequences of the given lengths, sorted by length and cut into batches of at most
    ``max_tokens`` padded tokens (``<cls>``/``<eos>`` included) and ``max_batch`` rows; the batch
    order is shuffled so a time-boxed run sees short and long batches alike."""
    rng = random.Random(seed)
    capped = sorted(min(n, max_residues) for n in lengths)
    batches: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for i, n in enumerate(capped):
        width = n + 2
        if current and (width * (len(current) + 1) > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append((f"s{i}", "".join(rng.choice(letters) for _ in range(n))))
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def esm_mlm(
    tokens: Sequence[str],
    *,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    ffn: int = 512,
    seed: int = 0,
    **config: Any,
) -> tuple[Any, Any]:
    """A random ``EsmForMaskedLM`` (eval mode) over ``tokens``, and its tokenizer.

    The vocabulary is written to a fresh temporary folder. ``config`` overrides or adds
    ``EsmConfig`` fields; the pad and mask ids default to the tokenizer's. The weights are drawn
    after ``torch.manual_seed(seed)``.
    """
    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    vocab = Path(tempfile.mkdtemp(prefix="bench-vocab-")) / "vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n")
    tokenizer = EsmTokenizer(vocab_file=str(vocab))
    fields: dict[str, Any] = {
        "vocab_size": len(tokens),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "max_position_embeddings": 1026,
        "position_embedding_type": "absolute",
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "emb_layer_norm_before": True,
        "token_dropout": False,
        **config,
    }
    torch.manual_seed(seed)
    return EsmForMaskedLM(EsmConfig(**fields)).eval(), tokenizer


def build_adapter(
    adapter: str,
    path: str | os.PathLike[str] | None = None,
    /,
    *,
    seed: int | None = None,
    device: str | None = None,
    **options: Any,
) -> Any:
    """An adapter by name, as the command line builds it (:func:`biocoreset.modelio.load_model`).

    Args:
        adapter: The adapter's name (``rna-fm``, ``esmc``, ``hf``...).
        path: A saved model; ``None`` builds from ``options`` alone (e.g. ``size="tiny"``).
        seed: If given, ``torch.manual_seed(seed)`` first (random weights are reproducible).
        device: Where the model goes; ``None`` leaves it where the adapter built it.
        **options: The adapter's options.
    """
    from biocoreset.modelio import load_model

    if seed is not None:
        import torch

        torch.manual_seed(seed)
    return load_model(path, adapter=adapter, options=options, device=device)


# -- reports -------------------------------------------------------------------------------------


def fmt(value: Any, pattern: str = "{}") -> str:
    """``pattern`` filled with ``value``, or ``n/a`` for ``None``."""
    return "n/a" if value is None else pattern.format(value)


def markdown_rows(
    items: Sequence[Mapping[str, Any]],
    rows: Sequence[tuple[str, str | Callable[[Any], Any]]],
) -> list[str]:
    """Markdown table lines, one per ``(title, get)`` in ``rows``, one column per item.

    ``get`` is a function of the item, or a format string filled with the item's keys
    (``"{measured[batches]:,}"``). A cell that raises ``KeyError``, ``TypeError`` or
    ``ZeroDivisionError`` (a figure that a partial run did not reach) reads ``n/a``.
    """
    lines = []
    for title, get in rows:
        cells = []
        for item in items:
            try:
                cells.append(get.format(**item) if isinstance(get, str) else str(get(item)))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("n/a")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def markdown_page(
    title: str,
    *,
    banner: Sequence[str] = (),
    intro: Sequence[str],
    command: str,
    device: Sequence[tuple[str, Any]],
    after_device: Sequence[str] = (),
    corner: str = "",
    results: Sequence[Mapping[str, Any]],
    rows: Sequence[tuple[str, str | Callable[[Any], Any]]],
    after_table: Sequence[str] = (),
    nothing: str = "Nothing was measured.",
) -> str:
    """A benchmark's report page: title, intro, ``### Command``, ``### Device``, ``### Results``
    (one column per result that has ``measured``, one line per row) and ``### Notes``.

    The notes list the results with an ``error`` (as failed, by ``label``) and every result's
    ``notes``; ``nothing`` is said when no result was measured and none failed.
    """
    lines = [title, ""]
    if banner:
        lines += [*banner, ""]
    lines += [*intro, "", "### Command", "", "```bash", command, "```", ""]
    lines += ["### Device", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in device), ""]
    lines += [*after_device, "", "### Results", ""]
    ok = [r for r in results if "measured" in r]
    if ok:
        lines += [f"| {corner} | " + " | ".join(r["label"] for r in ok) + " |"]
        lines += ["|---|" + "---|" * len(ok), *markdown_rows(ok, rows), "", *after_table, ""]
    failed = [r for r in results if "error" in r]
    notes = [n for r in results for n in r.get("notes", [])]
    if failed or notes:
        lines += ["### Notes", ""]
        lines += [f"- {r['label']}: **failed** — `{r['error']}`" for r in failed]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    if not ok and not failed:
        lines += [nothing, ""]
    return "\n".join(lines)


def oom_halving(
    attempt: Callable[[int], Any],
    size: int,
    device: Any,
    *,
    tries: int = 4,
    floor: int = 512,
    failed: Callable[[str], None] = print,
    halved: Callable[[int], None] = print,
) -> str | None:
    """Call ``attempt(size)``; after an out-of-memory error halve ``size`` and call it again.

    At most ``tries`` calls, and no halving at or below ``floor``. Device memory is freed after
    every call. ``failed(text)`` is called (inside the ``except``, so ``traceback.format_exc()``
    works) for every error, ``halved(size)`` with the size that failed before each halving.

    Returns:
        ``None`` once a call succeeds, else the last error, one line.
    """
    for i in range(tries):
        failure, oom = None, False
        try:
            attempt(size)
        except Exception as exc:  # keep going: a partial report beats none
            oom = is_oom(exc)
            failure = traceback.format_exception_only(type(exc), exc)[-1].strip()
            failed(failure)
        # the exception and its frames are gone here, so their tensors can be freed
        free_memory(device)
        if failure is None:
            return None
        if not (oom and i < tries - 1 and size > floor):
            return failure
        halved(size)
        size //= 2
    return None  # unreachable: the last try returns


def write_report(
    markdown: str, output: Path, data: Any = None, json_path: Path | None = None
) -> None:
    """Write ``markdown`` to ``output`` and, with ``json_path``, ``data`` as indented JSON there.

    Folders are created; each file ends in a newline; values JSON lacks are written as ``str``.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown + "\n", encoding="utf-8")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


# -- child processes ----------------------------------------------------------------------------


def module_command(module: str) -> list[str]:
    """The command that runs ``module`` (``benchmarks.NAME``) as a script: ``python -m module``."""
    return [sys.executable, "-m", module]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment and ``extra``, with the repository root first on
    ``PYTHONPATH``, so that a child runs ``python -m benchmarks.NAME`` from any folder."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **extra, "PYTHONPATH": path}


# -- code outside the package --------------------------------------------------------------------


def import_file(path: Path, name: str | None = None) -> types.ModuleType:
    """Import the Python file ``path`` as module ``name`` (default: its stem), once."""
    name = name or path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class _FolderFinder:
    """A meta-path finder for the top-level modules of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if path is not None:  # a submodule: its package's own path finds it
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.folder])


@contextlib.contextmanager
def importable_from(folder: Path) -> Iterator[None]:
    """Within the block, ``import NAME`` finds the modules of ``folder`` first (as a folder put at
    the head of ``sys.path`` would). The modules imported stay imported; ``sys.path`` is not
    touched."""
    finder = _FolderFinder(folder)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
