#!/usr/bin/env bash
# Set up a virtual environment (.venv) with everything the demo and the tests need, at the versions
# in requirements/lock.txt: the ones CI tests and envs/*.yaml pin (scripts/lock.py writes them).
# torch is installed first: here a CPU wheel of the locked version is on disk, and an unpinned torch
# would pull a multi-GB CUDA build. XLPROBE_TORCH picks another build (e.g. a CUDA one); the lock then
# applies to everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK=requirements/lock.txt
TORCH_SPEC=${XLPROBE_TORCH:-$(grep '^torch==' "$LOCK")}
# A venv whose creation was interrupted has no activate script: make it anew.
if [ ! -f .venv/bin/activate ]; then
    "$PYTHON" -m venv --clear .venv
fi
# The lock holds versions for one Python (its `# python:` line); elsewhere they may not exist.
python_version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
locked_python=$(sed -n 's/^# python: //p' "$LOCK")
constraints=.venv/xlprobe-constraints.txt
if [ "$python_version" = "$locked_python" ]; then
    grep -v '^torch==' "$LOCK" >"$constraints"
else
    echo "setup: Python $python_version, but $LOCK is for Python $locked_python:" \
        "installing the newest compatible versions, not the tested ones" >&2
    : >"$constraints"
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# Unquoted: the spec may carry pip options (an index for another CUDA build: docs/gpu.md).
.venv/bin/python -m pip install --quiet -c "$constraints" $TORCH_SPEC
# A CUDA build of torch gets QLoRA's bitsandbytes too (the qlora extra; scripts/gpu-check uses it).
extras=dev
if .venv/bin/python -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
    extras=dev,qlora
fi
.venv/bin/python -m pip install --quiet -c "$constraints" -e ".[$extras]"
echo "xlprobe installed in .venv ($(.venv/bin/python -c 'import torch, xlprobe; print("torch", torch.__version__)'))"
