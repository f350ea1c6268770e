#!/usr/bin/env bash
# Set up a virtual environment (.venv) with everything the demo and the tests need.
# torch is pinned first: here a CPU wheel of 2.13.0 is on disk, and an unpinned torch would pull a
# multi-GB CUDA build. On a GPU machine, install the torch build you want before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${XLPROBE_TORCH:-torch==2.13.0}
# A venv whose creation was interrupted has no activate script: make it anew.
if [ ! -f .venv/bin/activate ]; then
    "$PYTHON" -m venv --clear .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "xlprobe installed in .venv ($(.venv/bin/python -c 'import torch, xlprobe; print("torch", torch.__version__)'))"
