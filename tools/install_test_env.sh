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
python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
