#!/usr/bin/env bash
# A workflow run that records what it cost: snakemake --cores CORES --configfile CONFIG [ARGS...],
# its log in RESULTS/snakemake.log, and its wall time, jobs, cores and the machine's load (at the
# start, at the end, and the mean of a sample every 30 s) in RESULTS/run_time.json, which
# benchmarks/write_results.py puts into docs/results.md. RESULTS is the config's `results:`.
#
#   bash scripts/timed-run.sh config/showcase.yaml          (CORES=2 by default: all of nproc)
#
# Needs the project's environment active (source .venv/bin/activate).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 CONFIG [snakemake args...]" >&2; exit 2; }
config=$1
shift
cores=${CORES:-$(nproc)}
results=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["results"])' "$config")
mkdir -p "$results"
loads=$(mktemp)
load_start=$(cut -d' ' -f1 /proc/loadavg)
# Its output goes nowhere: a sleep left running after the kill below must not hold the caller's pipe.
(while sleep 30; do cut -d' ' -f1 /proc/loadavg >>"$loads"; done) >/dev/null 2>&1 &
sampler=$!
# The sampler stops however the script ends (a failed or interrupted run included).
trap 'kill "$sampler" 2>/dev/null || true; rm -f "$loads"' EXIT
start=$(date +%s)
status=0
snakemake --cores "$cores" --configfile "$config" "$@" 2>&1 | tee "$results/snakemake.log" || status=$?
wall=$(($(date +%s) - start))
[[ $status -eq 0 ]] || exit "$status"
# Snakemake's last progress line: "N of M steps (100%) done"; none when nothing was left to run,
# and then the recorded time of the last full run stays.
jobs=$(grep -o '[0-9]* of [0-9]* steps (100%) done' "$results/snakemake.log" | tail -1 | cut -d' ' -f3 || true)
if [[ -n $jobs ]]; then
    load_mean=$(awk '{s += $1; n++} END {if (n) printf "%.2f", s / n; else print "null"}' "$loads")
    printf '{"wall_s": %d, "jobs": %s, "cores": %s, "cpus": %s, "load_start": %s, "load_end": %s, "load_mean": %s, "date": "%s"}\n' \
        "$wall" "$jobs" "$cores" "$(nproc)" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" "$load_mean" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$results/run_time.json"
fi
echo "$config: $((wall / 60)) min $((wall % 60)) s, results in $results/"
