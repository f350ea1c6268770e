#!/usr/bin/env bash
# The test suite: set-up, then pytest (unit tests and a reduced end-to-end run of the demo workflow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
python -m pytest --durations=25 "$@"  # the 25 slowest tests, to keep CI time in view
