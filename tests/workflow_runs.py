"""Running the workflow from tests: Snakemake in a subprocess, and what a dry run plans."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake(
    workdir: Path, *args: str, configfile: Path, timeout: int = 1500, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Snakemake on the project's Snakefile in `workdir` (in `env`, default this process's environment);
    the result has `seconds` (its wall time)."""
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        *args,
    ]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    done.seconds = time.monotonic() - t0
    return done


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    in_table = False
    for line in result.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts


# Keys whose values differ between two runs of the same job: where and when it ran, how long it took,
# and the checksum of a JSON result (its text includes the provenance).
RUN_SPECIFIC = {"provenance", "seconds", "train_seconds", "checksum"}


def _without_run_specific(value):
    if isinstance(value, dict):
        return {k: _without_run_specific(v) for k, v in value.items() if k not in RUN_SPECIFIC}
    if isinstance(value, list):
        return [_without_run_specific(v) for v in value]
    return value


def same_result(a: Path, b: Path) -> bool:
    """Two result files hold the same results: arrays equal, JSON equal but for run-specific keys
    (provenance, timings), anything else byte for byte."""
    import json

    import numpy as np

    if a.suffix == ".npy":
        return np.array_equal(np.load(a), np.load(b))
    if a.suffix == ".json":
        return _without_run_specific(json.loads(a.read_text())) == _without_run_specific(json.loads(b.read_text()))
    return a.read_bytes() == b.read_bytes()


def result_files(results: Path, model: str | None = None) -> list[Path]:
    """The result files of a run (relative paths): per-point results of one model, or all of them.

    Not logs, benchmarks, figures (their rendering embeds dates) nor provenance sidecars.
    """
    files = []
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if not path.is_file() or relative.parts[0] in ("logs", "benchmarks", "figures"):
            continue
        if path.name.startswith(".") or path.name.endswith(".provenance.json"):
            continue
        if model is not None and (len(relative.parts) < 3 or relative.parts[1] != model):
            continue
        files.append(relative)
    return files


def planned_field(result: subprocess.CompletedProcess, rule: str, field: str) -> list[str]:
    """The text of one field (`wildcards`, `input`, ...) of every job of `rule` that a dry run lists."""
    values, current = [], None
    for line in result.stdout.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            current = stripped.split()[1].rstrip(":")
        elif current == rule and stripped.startswith(f"{field}:"):
            values.append(stripped[len(field) + 1:].strip())
    return values


def planned_pairs(result: subprocess.CompletedProcess, rule: str, field: str) -> list[dict[str, str]]:
    """A `field: key=value, ...` line (wildcards, resources) of every job of `rule` in a dry run."""
    return [dict(pair.strip().split("=", 1) for pair in text.split(",")) for text in planned_field(result, rule, field)]


def planned_wildcards(result: subprocess.CompletedProcess, rule: str) -> list[dict[str, str]]:
    """The wildcards of every job of `rule` that a dry run lists."""
    return planned_pairs(result, rule, "wildcards")
