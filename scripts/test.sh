#!/usr/bin/env bash
# The test suite: set-up, then pytest (unit tests and a reduced end-to-end run of the demo workflow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
# Two workers (pytest-xdist; tests/conftest.py keeps the users of one session fixture together);
# the 25 slowest tests, to keep CI time in view
python -m pytest -n "${XLPROBE_TEST_WORKERS:-2}" --durations=25 "$@"
