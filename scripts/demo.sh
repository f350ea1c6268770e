#!/usr/bin/env bash
# The embedded offline demo, end to end: set-up, workflow, report (results/demo/, report.html).
# The workflow's wall time, job count and load go to results/demo/run_time.json (scripts/timed-run.sh),
# which benchmarks/write_results.py puts into docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
RESULTS=results/demo
bash scripts/timed-run.sh config/demo.yaml "$@"
snakemake --cores 1 --configfile config/demo.yaml --report "$RESULTS/report.html"
echo "Demo done: $RESULTS/alignment.tsv, $RESULTS/correlations.tsv, $RESULTS/figures/, $RESULTS/report.html"
