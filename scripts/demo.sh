#!/usr/bin/env bash
# The embedded offline demo, end to end: set-up, workflow, report (results/demo/, report.html).
# The workflow's wall time, job count and load go to results/demo/run_time.json, which
# benchmarks/write_results.py puts into docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
CORES=${CORES:-$(nproc)}
RESULTS=results/demo
mkdir -p "$RESULTS"
load_start=$(cut -d' ' -f1 /proc/loadavg)
start=$(date +%s)
snakemake --cores "$CORES" --configfile config/demo.yaml "$@" 2>&1 | tee "$RESULTS/snakemake.log"
wall=$(($(date +%s) - start))
# Snakemake's last progress line: "N of M steps (100%) done"; none when nothing was left to run,
# and then the recorded time of the last full run stays.
jobs=$(grep -o '[0-9]* of [0-9]* steps (100%) done' "$RESULTS/snakemake.log" | tail -1 | cut -d' ' -f3 || true)
[ -n "$jobs" ] && printf '{"wall_s": %d, "jobs": %s, "cores": %s, "cpus": %s, "load_start": %s, "load_end": %s, "date": "%s"}\n' \
    "$wall" "$jobs" "$CORES" "$(nproc)" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$RESULTS/run_time.json"
snakemake --cores 1 --configfile config/demo.yaml --report "$RESULTS/report.html"
echo "Demo done in $((wall / 60)) min $((wall % 60)) s: $RESULTS/alignment.tsv, $RESULTS/correlations.tsv," \
    "$RESULTS/figures/, $RESULTS/report.html"
