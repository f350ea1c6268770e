"""What a finished file should be: its size and a fast checksum, recorded by its writer, checked by
its readers and by `xlprobe verify`.

Where the records are:
- activations: `meta.json` beside the layer files, `files`: layer file name -> record;
- checkpoints: a demo model folder's `checksums.json` (every file under it), a checkpoint marker's
  `files` (the weight files of the cache folder);
- JSON results (probes): the file's own `checksum`, a record of the JSON written without that key.

A record is {size, xxh3_128}: xxHash's XXH3 (128 bit), non-cryptographic, as fast as the disk
(benchmarks/bench_checksum.py). It catches truncation and flipped bytes, not a forgery.

A damaged or missing file stops its reader with `DamagedFileError`, naming the file and the command
that rebuilds exactly it (`rebuild_command`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import xxhash

from xlprobe.io import json_text, read_json, write_json

ALGORITHM = "xxh3_128"
# Demo model folders: the record of every file in it, written last (before the folder is renamed).
CHECKSUMS = "checksums.json"
_CHUNK = 8 << 20


class DamagedFileError(RuntimeError):
    """A file that is missing or differs from its record; the message says how to rebuild it."""

    def __init__(self, path: str | os.PathLike, problem: str, rebuild: str | None = None) -> None:
        self.path, self.problem, self.rebuild = str(path), problem, rebuild
        message = f"{path}: {problem}"
        if rebuild:
            message += f"; rebuild it with: {rebuild}"
        super().__init__(message)


def rebuild_command(target: str | os.PathLike, configfile: str | os.PathLike | None = None) -> str:
    """The Snakemake command that reruns exactly the job writing `target` (`--force`: that job only,
    its up-to-date inputs are kept). `configfile`: the one the run used, where known."""
    config = f" --configfile {configfile}" if configfile else ""
    return f"snakemake --cores 1{config} --force {target}"


def checksum_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """{size, xxh3_128} of a file, read in chunks (a file of any size in constant memory)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return {"size": os.path.getsize(path), ALGORITHM: digest.hexdigest()}


def file_problem(path: str | os.PathLike, record: Mapping[str, Any], checksum: bool = True) -> str | None:
    """What is wrong with a file against its record: None if nothing. The size is compared first
    (a truncated file is found without reading it); `checksum=False`: the size alone."""
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    if size != record["size"]:
        return f"{size} bytes, {record['size']} recorded (damaged)"
    if checksum and file_record(path)[ALGORITHM] != record[ALGORITHM]:
        return f"{ALGORITHM} checksum differs from the one recorded (damaged)"
    return None


def check_file(path: str | os.PathLike, record: Mapping[str, Any] | None, rebuild: str | None = None) -> None:
    """Stop with DamagedFileError if `path` is missing or not what `record` says; no record: nothing
    to compare (a result written before records were kept), only that it exists."""
    problem = file_problem(path, record) if record else (None if os.path.isfile(path) else "missing")
    if problem:
        raise DamagedFileError(path, problem, rebuild)


# ----------------------------------------------------------------------------- folders
def folder_records(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Relative path -> record of every file under `folder` (or of the given names), sorted."""
    folder = Path(folder)
    if names is None:
        names = (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    return {name: file_record(folder / name) for name in sorted(names)}


def folder_problems(folder: str | os.PathLike, records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Path -> problem of each recorded file under `folder` that is missing or damaged."""
    problems = {}
    for name, record in records.items():
        problem = file_problem(Path(folder, name), record)
        if problem:
            problems[str(Path(folder, name))] = problem
    return problems


def write_folder_checksums(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Record every file of a model folder in its `checksums.json`."""
    records = folder_records(folder)
    write_json(Path(folder, CHECKSUMS), {"algorithm": ALGORITHM, "files": records})
    return records


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_records(checkpoint_input: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(folder, file records) of a checkpoint, as a job's `checkpoint` input names it: a demo model
    folder (its checksums.json) or a checkpoint marker (its `files`, under the cache folder `path`).
    A folder or marker without records has nothing to compare: no records."""
    checkpoint_input = Path(checkpoint_input)
    if checkpoint_input.is_dir():
        sums = checkpoint_input / CHECKSUMS
        files = _read_record_file(sums, rebuild_command(checkpoint_input))["files"] if sums.exists() else {}
        return checkpoint_input, files
    marker = _read_record_file(checkpoint_input, rebuild_command(checkpoint_input))
    return Path(marker.get("path", "")), marker.get("files") or {}


def checkpoint_problems(checkpoint_input: str | os.PathLike) -> dict[str, str]:
    """Path -> problem of each damaged or missing file of a checkpoint."""
    folder, records = checkpoint_records(checkpoint_input)
    return folder_problems(folder, records)


def check_checkpoint(checkpoint_input: str | os.PathLike) -> None:
    """Stop, naming the first damaged file and the command that rebuilds the checkpoint."""
    for path, problem in checkpoint_problems(checkpoint_input).items():
        raise DamagedFileError(path, problem, checkpoint_rebuild(checkpoint_input, path))


def checkpoint_rebuild(checkpoint_input: str | os.PathLike, damaged: str | os.PathLike,
                       configfile: str | os.PathLike | None = None) -> str:
    """A demo model folder is rebuilt whole; a cached hub file must go first, the blob behind the
    snapshot's link too (the hub client keeps a blob it has), then its marker's job fetches and
    records it again."""
    command = rebuild_command(checkpoint_input, configfile)
    if Path(checkpoint_input).is_dir():
        return command
    if read_json(checkpoint_input).get("source") == "local":  # the user's own files: nothing to fetch
        return f"restore {damaged} from where the local checkpoint came from, then {command}"
    blob = os.path.realpath(damaged)
    files = f"{blob} {damaged}" if blob != os.path.abspath(damaged) else str(damaged)
    return f"rm -f {files} && {command}"


# ----------------------------------------------------------------------------- sealed JSON
def seal(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON result with its own `checksum`: the record of its text written without that key."""
    body = {k: v for k, v in obj.items() if k != "checksum"}
    text = json_text(body).encode()
    return {**body, "checksum": {"size": len(text), ALGORITHM: checksum_bytes(text)}}


def write_sealed_json(path: str | os.PathLike, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Write `obj` sealed; return what was written."""
    sealed = seal(obj)
    write_json(path, sealed)
    return sealed


def sealed_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a sealed JSON result: None if nothing (or if it has no seal)."""
    try:
        obj = read_json(path)
    except FileNotFoundError:
        return "missing"
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not valid JSON ({error}; damaged)"
    record = obj.pop("checksum", None) if isinstance(obj, dict) else None
    if record is None:
        return None
    text = json_text(obj).encode()
    if len(text) != record["size"] or checksum_bytes(text) != record[ALGORITHM]:
        return f"content differs from its {ALGORITHM} checksum (damaged)"
    return None


def read_sealed_json(path: str | os.PathLike) -> dict[str, Any]:
    """A sealed JSON result, checked; a damaged one stops naming the file and its rebuild command."""
    problem = sealed_problem(path)
    if problem:
        raise DamagedFileError(path, problem, rebuild_command(path))
    obj = read_json(path)
    obj.pop("checksum", None)
    return obj


def read_record_json(path: str | os.PathLike, rebuild: str | None = None) -> dict[str, Any]:
    """A JSON sidecar (meta.json, a marker); one that is not valid JSON stops naming the file."""
    return _read_record_file(path, rebuild or rebuild_command(path))


def _read_record_file(path: str | os.PathLike, rebuild: str | None = None) -> dict[str, Any]:
    try:
        return read_json(path)
    except FileNotFoundError:
        raise DamagedFileError(path, "missing", rebuild) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(path, f"not valid JSON ({error}; damaged)", rebuild) from None


# ----------------------------------------------------------------------------- xlprobe verify
def verify_results(
    results: str | os.PathLike, configfile: str | os.PathLike | None = None, quick: bool = False
) -> tuple[int, list[DamagedFileError]]:
    """Check every recorded file under a results folder and the checkpoints its dumps used.

    Returns (files checked, the damaged or missing ones, each with the command that rebuilds exactly
    it). Relative paths in the records are read from the current directory (the workflow's).
    `quick`: sizes and presence only, no file read but the JSON records (what a workflow start affords).
    """
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"{results}: no such results folder")
    checked = 0
    # Listed upstream first: a dump's rebuild needs its checkpoint whole, a probe's its activations.
    damaged: dict[str, list[DamagedFileError]] = {"checkpoints": [], "activations": [], "probes": []}
    checkpoint_inputs: dict[str, None] = {}

    def check(path: Path, problem: str | None, rebuild: str, kind: str) -> None:
        nonlocal checked
        checked += 1
        if problem:
            damaged[kind].append(DamagedFileError(path, problem, rebuild))

    for meta_path in sorted(results.glob("activations/**/meta.json")):
        try:
            meta = read_record_json(meta_path, rebuild_command(meta_path, configfile))
        except DamagedFileError as error:
            check(meta_path, error.problem, error.rebuild, "activations")
            continue
        check(meta_path, None, "", "activations")
        for name, record in (meta.get("files") or {}).items():
            path = meta_path.parent / name
            check(path, file_problem(path, record, not quick), rebuild_command(path, configfile), "activations")
        checkpoint = (meta.get("provenance") or {}).get("checkpoint_input")
        if checkpoint:
            checkpoint_inputs.setdefault(checkpoint)
    for probe_path in [] if quick else sorted(results.glob("probes/**/*.json")):
        check(probe_path, sealed_problem(probe_path), rebuild_command(probe_path, configfile), "probes")
    # Inputs that results name but that are gone (a failed job's outputs are deleted, and Snakemake
    # does not remake an input whose consumers are up to date): the probes of each overlap.
    for sidecar in sorted(results.glob("overlap/**/*.provenance.json")):
        try:
            probes = read_record_json(sidecar).get("inputs") or []
        except DamagedFileError:
            continue  # a sidecar is rewritten with its overlap; nothing here depends on it
        for probe in probes:
            if not Path(probe).exists():
                check(Path(probe), "missing", rebuild_command(probe, configfile), "probes")
    for checkpoint in checkpoint_inputs:
        try:
            folder, records = checkpoint_records(checkpoint)
        except DamagedFileError as error:
            check(Path(error.path), error.problem, rebuild_command(checkpoint, configfile), "checkpoints")
            continue
        for name, record in records.items():
            path = folder / name
            check(path, file_problem(path, record, not quick), checkpoint_rebuild(checkpoint, path, configfile),
                  "checkpoints")
    return checked, [error for errors in damaged.values() for error in errors]
