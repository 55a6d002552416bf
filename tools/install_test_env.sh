#!/usr/bin/env bash
# Install everything the test suite needs into the active Python environment.
# torch is pinned first: an unpinned torch pulls a multi-GB CUDA build on CPU machines.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --upgrade pip >/dev/null
python -m pip install "torch==2.13.0"
python -m pip install -e ".[test,docs,dev]" ./examples/biocoreset-example-plugin
# esm (ESM-C) with --no-deps: a plain install drags in torchvision and replaces the CPU torch.
if [ -f tools/esm-requirements.txt ]; then
  python -m pip install --no-deps "esm==3.2.1.post1"
  python -m pip install -r tools/esm-requirements.txt
fi
# MMseqs2 (a binary, not a Python package) for the cluster selector, `biocoreset cluster` and
# `dedup --method mmseqs`: the Debian package where we are root; the tests that need it skip elsewhere.
if ! command -v mmseqs >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmseqs2; } >/dev/null 2>&1 \
      || echo "warning: apt-get install mmseqs2 failed; the MMseqs2 tests will skip" >&2
  else
    echo "note: MMseqs2 not installed (not root or no apt-get): install mmseqs2 (Debian) or bioconda's mmseqs2 to run its tests" >&2
  fi
fi
command -v mmseqs >/dev/null 2>&1 && echo "mmseqs $(mmseqs version)"
python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
