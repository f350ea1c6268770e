"""Time `xlprobe plan` (Snakemake's DAG, resolved config, shapes, estimates) on a config; write its table.

    python benchmarks/bench_plan.py [CONFIG] [OUT.md]     (default config.yaml, docs/plan_<config>.md)

Each run is a fresh process (as a user's `xlprobe plan` is), in an empty working directory (no word
tables, nothing finished: every job of the grid is planned). Prints and writes the table of the last
run, the wall times and the CPU times of three runs (on a shared machine the CPU time is the better
measure of what the plan costs).
"""

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 3


def main() -> int:
    config = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "config.yaml").resolve()
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "docs" / f"plan_{config.stem}.md"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    walls, cpus, table = [], [], ""
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as workdir:
            started, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [sys.executable, "-m", "xlprobe.cli", "plan", "--config", str(config), "--directory", workdir,
                 "--markdown"],
                capture_output=True, text=True, check=True, env=env,
            )
            walls.append(time.perf_counter() - started)
            now = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
            table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    summary = (f"`xlprobe plan --config {config.relative_to(REPO)}` in an empty directory: wall time "
               f"{statistics.median(walls):.1f} s (median of {RUNS} fresh processes: "
               f"{', '.join(f'{w:.1f}' for w in walls)} s); CPU time {statistics.median(cpus):.1f} s "
               f"(about the wall time on a quiet machine); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.")
    out.write_text(summary + "\n\n" + table + "\n")
    print(summary)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
