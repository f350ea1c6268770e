"""scripts/timed-run.sh: a workflow run that records its wall time, jobs and load for docs/results.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # three Snakemake runs


def timed_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The script as a caller that captures its output runs it: its output ends when it exits (nothing it
    started holds the pipe: CI logs and `| tee` would wait for it)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CORES": "1"}
    command = ["bash", str(REPO / "scripts" / "timed-run.sh"), "config.yaml", "--snakefile", str(REPO / "Snakefile"),
               *args]
    output: list[str] = []
    with subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as script:
        reader = threading.Thread(target=lambda: output.extend(script.communicate()))
        reader.start()
        script.wait(timeout=600)
        reader.join(timeout=5)
        assert not reader.is_alive(), "the script's output stayed open after it exited"
    return subprocess.CompletedProcess(command, script.returncode, *output)


def test_a_run_records_its_wall_time_jobs_and_load_and_a_failed_one_nothing(tmp_path):
    shutil.copy(REPO / "config" / "test.yaml", tmp_path / "config.yaml")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    results = tmp_path / config["results"]
    # One job: the demo's generated treebanks
    target = f"{config['ud_root']}/UD_Synth-Xa/xa-ud-train.conllu"
    done = timed_run(tmp_path, target)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((results / "run_time.json").read_text())
    log = (results / "snakemake.log").read_text()
    assert "1 of 1 steps (100%) done" in log
    assert record["jobs"] == 1 and record["cores"] == 1 and record["cpus"] == os.cpu_count()
    assert record["wall_s"] >= 0 and record["load_start"] >= 0 and record["load_end"] >= 0
    assert "load_mean" in record  # null for a run shorter than one 30 s sample
    # Nothing left to run: the recorded time of the full run stays.
    again = timed_run(tmp_path, target)
    assert again.returncode == 0 and json.loads((results / "run_time.json").read_text()) == record
    # A failing run fails the script with Snakemake's status and records nothing.
    (results / "run_time.json").unlink()
    failed = timed_run(tmp_path, "no/rule/makes/this.tsv")
    assert failed.returncode != 0 and not (results / "run_time.json").exists()
