"""Cold-start time: fresh interpreters importing biocoreset, selecting and listing plugins.

Each case runs in a new ``python`` process (nothing cached in memory but the OS file cache); the
wall time of the whole process is measured, ``--repeats`` times, cases interleaved, and the median
reported. The target (issue 16) is ``from biocoreset import select; select(scores, "cci",
budget=140)`` on 1,400 scores in at most 1.0 s on an idle machine.

With ``--compare SRC`` the same cases also run against another checkout's ``src`` folder (e.g. the
main branch before lazy plugin loading), side by side in the same run.

Run::

    python -m benchmarks.bench_startup --repeats 7
    python -m benchmarks.bench_startup --repeats 7 --compare /path/to/other/checkout/src \
        --write docs/benchmarks-startup.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import ROOT

SRC = ROOT / "src"

CASES: dict[str, str] = {
    "python (interpreter only)": "pass",
    "import numpy": "import numpy",
    "import biocoreset": "import biocoreset",
    "select(scores, 'cci', budget=140)": (
        "import numpy as np\n"
        "from biocoreset import select\n"
        "select(np.load({scores!r}), 'cci', budget=140)"
    ),
    "biocoreset plugins": (
        "import contextlib, io\n"
        "from biocoreset.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['plugins'])"
    ),
    "import torch (for scale)": "import torch",
}

CHECK = (
    "\nimport sys\nprint(','.join(m for m in ('torch', 'transformers', 'esm') if m in sys.modules))"
)


def run_once(code: str, src: Path) -> tuple[float, str]:
    """Wall seconds of one fresh interpreter running ``code``, and the heavy modules it loaded."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + CHECK], env=env, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    lines = out.stdout.splitlines()
    return seconds, lines[-1].strip() if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per case (median reported)")
    parser.add_argument("--compare", type=Path, help="another checkout's src folder to time too")
    parser.add_argument("--write", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    sources = {"this checkout": SRC}
    if args.compare:
        sources["compared"] = args.compare.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.npy"
        np.save(scores, np.random.default_rng(0).normal(size=1400))
        codes = {name: code.format(scores=str(scores)) for name, code in CASES.items()}
        times: dict[tuple[str, str], list[float]] = {}
        loaded: dict[tuple[str, str], str] = {}
        for _ in range(args.repeats):  # interleaved: load spikes hit every case alike
            for name, code in codes.items():
                for label, src in sources.items():
                    if label != "this checkout" and name.startswith(
                        ("python", "import numpy", "import torch")
                    ):
                        continue
                    seconds, heavy = run_once(code, src)
                    times.setdefault((name, label), []).append(seconds)
                    loaded[(name, label)] = heavy
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Cold start (`benchmarks/bench_startup.py`)",
        "",
        "Command:",
        "",
        "```",
        "python -m benchmarks.bench_startup "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "```",
        "",
        f"Each case is a fresh `python -c` process (wall time of the whole process, median of "
        f"{args.repeats}, cases interleaved); Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the end. Target (issue 16): the "
        "`select` case at most 1.0 s on an idle machine.",
        "",
        "| case | checkout | median (s) | min (s) | heavy modules loaded |",
        "|---|---|---|---|---|",
    ]
    for (name, label), values in times.items():
        lines.append(
            f"| `{name}` | {label} | {statistics.median(values):.2f} | {min(values):.2f} | "
            f"{loaded[(name, label)] or '-'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
