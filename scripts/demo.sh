#!/usr/bin/env bash
# The embedded offline demo, end to end: set-up, workflow, report (results/demo/, report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
CORES=${CORES:-$(nproc)}
time snakemake --cores "$CORES" --configfile config/demo.yaml "$@"
snakemake --cores 1 --configfile config/demo.yaml --report results/demo/report.html
echo "Demo done: results/demo/alignment.tsv, results/demo/correlations.tsv, results/demo/figures/, results/demo/report.html"
