"""Which environment switches change the CPU kernels, and so the last bits of a score, here.

    python tools/float_kernels.py

Runs itself once per setting (a fresh process each: the switches are read at start-up) and prints,
for a float64 matmul in torch (MKL) and numpy (OpenBLAS), a float64 softmax, a tiny float64
model's random weights (drawn in float32, as ``tiny_esm`` does, or in float64) and its scores
(diagonal and K-FAC), how many values differ from the default kernels' and by how much (the
largest relative difference). docs/reliability.md, "Floats across CPUs", records the
figures; .ci/run uses the last setting for its second run of the numeric tests.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

SETTINGS = {
    "default kernels": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_ENABLE_INSTRUCTIONS=SSE4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "OPENBLAS_CORETYPE=Prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    "CI (all three)": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_CORETYPE": "Prescott",
    },
}


def _compute() -> dict:
    import numpy as np
    import torch

    from biocoreset import score
    from biocoreset.testing import random_rna, tiny_esm

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(257, 129, dtype=torch.float64, generator=g)
    b = torch.randn(129, 67, dtype=torch.float64, generator=g)
    out = {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch matmul": (a @ b).numpy(),
        "numpy matmul": a.numpy() @ b.numpy(),
        "torch softmax": torch.softmax(a, 1).numpy(),
    }
    records = random_rna(24, seed=11, min_len=5, max_len=40)
    for init in (torch.float32, torch.float64):  # the dtype tiny_esm's random weights are drawn in
        torch.set_default_dtype(init)
        model, tok = tiny_esm(seed=2)  # a float64 model either way
        torch.set_default_dtype(torch.float32)
        drawn = "float32" if init == torch.float32 else "float64"
        out[f"tiny_esm weights drawn in {drawn}"] = torch.cat(
            [p.detach().flatten() for p in model.parameters()]
        ).numpy()
        for curvature in ("diagonal", "kfac"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = score(model, records, tokenizer=tok, subset=8, batch_size=5, seed=3,
                          curvature=curvature, progress=False)  # fmt: skip
            out[f"scores ({curvature}, weights drawn in {drawn})"] = np.asarray(r.scores)
    return out


def main() -> None:
    import numpy as np

    if sys.argv[1:] == ["--child"]:
        sys.stdout.buffer.write(pickle.dumps(_compute()))
        return
    keys = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE")
    base_env = {k: v for k, v in os.environ.items() if k not in keys}
    base_env.setdefault("OMP_NUM_THREADS", "1")
    runs = {}
    for name, extra in SETTINGS.items():
        proc = subprocess.run(
            [sys.executable, __file__, "--child"],
            env={**base_env, **extra},
            capture_output=True,
            check=True,
        )
        runs[name] = pickle.loads(proc.stdout)
    ref = runs["default kernels"]
    for name, got in runs.items():
        cells = []
        for key, want in ref.items():
            if key == "capability":
                continue
            diff = got[key] != want
            rel = np.abs(got[key] - want) / np.maximum(np.abs(want), np.finfo(float).tiny)
            cells.append(f"{key}: {int(diff.sum())}/{diff.size} differ, max {rel.max():.1e}")
        print(f"{name} [torch {got['capability']}]\n  " + "\n  ".join(cells))


if __name__ == "__main__":
    main()
