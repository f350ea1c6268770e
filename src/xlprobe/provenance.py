"""What every result file records about how it was made.

JSON results carry a `provenance` key; a TSV result has a JSON sidecar beside it, so that the TSV
keeps the columns of the contract in docs/files.md: `<name>.provenance.json` (`sidecar_path`), or
for transfer the `<task>.json` that also holds the training history.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xlprobe.io import read_json

_LIBRARIES = ("xlprobe", "torch", "transformers", "tokenizers", "peft", "numpy", "scipy", "pandas", "conllu")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


# Where this package's code is; in a git checkout (an editable install), its commit names the code.
SOURCE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_version() -> dict[str, Any]:
    """The code that makes a result: the checkout's `commit` and whether its tree had uncommitted
    changes (`dirty`), where the package runs from a git checkout; else the package `version`.

    `xlprobe 0.1.0` alone cannot tell a result made before a library fix from one made after it.
    """
    # The package's own files must be tracked: a copy installed into a venv inside a checkout is not
    # the checkout's code.
    if _git("ls-files", "--error-unmatch", str(SOURCE_DIR / "provenance.py")) is not None:
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain")
        if commit and status is not None:
            return {"commit": commit, "dirty": bool(status)}
    try:
        return {"version": importlib.metadata.version("xlprobe")}
    except importlib.metadata.PackageNotFoundError:
        return {"version": None}


def provenance(config_slice: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A JSON-able record: the given fields, the config slice used, the code's version (`code`),
    library versions, host and time.

    On a SLURM cluster it also names the job (`slurm_job_id`), whose log and accounting then explain
    the file.
    """
    record: dict[str, Any] = dict(fields)
    if config_slice is not None:
        record["config"] = config_slice
    record["code"] = code_version()
    record["libraries"] = library_versions()
    record["python"] = platform.python_version()
    record["host"] = socket.gethostname()
    if os.environ.get("SLURM_JOB_ID"):
        record["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    record["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return record


def sidecar_path(table: str | os.PathLike) -> str:
    """Where a TSV result's provenance goes: `x/layer2.tsv` -> `x/layer2.provenance.json`.

    Rules declare it with this function too (a string: it may hold {wildcards}). Writers write it
    before the TSV, so that a TSV that looks finished always has its provenance.
    """
    return str(table).removesuffix(".tsv") + ".provenance.json"


def checkpoints_of(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The distinct `provenance.checkpoint` records of JSON results, in first-seen order.

    One (model, step) has one record; two mean that its inputs came from different weights
    (e.g. a moving revision such as `main` re-downloaded between jobs).
    """
    seen: dict[str, dict[str, Any]] = {}
    for path in paths:
        record = (read_json(path).get("provenance") or {}).get("checkpoint")
        if record is not None:
            seen.setdefault(json.dumps(record, sort_keys=True), record)
    return list(seen.values())
