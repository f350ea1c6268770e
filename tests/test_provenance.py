"""Provenance records: the fields every result carries, sidecar names, checkpoints gathered from inputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from xlprobe.io import write_json
from xlprobe.provenance import checkpoints_of, provenance, sidecar_path

HUB = {"model": "m", "step": "10", "source": "hub", "repo": "org/m", "revision": "step10", "commit": "a" * 40}


def test_slurm_job_id_exactly_when_under_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert "slurm_job_id" not in provenance({"k": 1})
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    record = provenance({"k": 1}, stage="x")
    assert record["slurm_job_id"] == "4242"
    assert (record["config"], record["stage"]) == ({"k": 1}, "x")
    assert record["libraries"]["numpy"] and record["python"] and record["created"]


def test_sidecar_path_replaces_the_tsv_suffix_only():
    assert sidecar_path("results/overlap/m/0/layer2.tsv") == "results/overlap/m/0/layer2.provenance.json"
    # A template with wildcards, as the rules declare it.
    assert sidecar_path("R/similarity/{model}/{step}.tsv") == "R/similarity/{model}/{step}.provenance.json"


def test_checkpoints_of_keeps_distinct_records_in_order(tmp_path):
    local = {"model": "m", "step": "10", "source": "local", "path": "/ckpt/10"}
    paths = []
    for name, checkpoint in [("a", HUB), ("b", local), ("c", dict(reversed(HUB.items()))), ("d", None)]:
        paths.append(tmp_path / f"{name}.json")
        write_json(paths[-1], {"provenance": provenance(checkpoint=checkpoint)} if checkpoint else {"x": 1})
    # Key order does not make a record distinct; a file without a record adds none.
    assert checkpoints_of(paths) == [HUB, local]
    assert checkpoints_of(paths[:1]) == [HUB]


def _git(*args: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False).stdout


def test_the_code_version_is_the_checkouts_commit_and_whether_it_had_changes():
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").strip() != "true":
        pytest.skip("not a git checkout (a source archive): see the next test")
    code = provenance()["code"]
    assert code["commit"] == _git("rev-parse", "HEAD").strip()
    assert code["dirty"] == bool(_git("status", "--porcelain").strip())


def test_outside_a_checkout_the_code_is_the_package_version(tmp_path, monkeypatch):
    import importlib.metadata

    from xlprobe import provenance as module

    monkeypatch.setattr(module, "SOURCE_DIR", tmp_path)  # as if installed from a wheel
    module.code_version.cache_clear()
    try:
        assert module.provenance()["code"] == {"version": importlib.metadata.version("xlprobe")}
    finally:
        module.code_version.cache_clear()
