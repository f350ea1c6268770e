"""The workflow end to end on a reduced demo (config/test.yaml), and its incremental reruns."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, configfile: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500)


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


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    configfile = workdir / "config.yaml"
    shutil.copy(REPO / "config" / "test.yaml", configfile)
    result = snakemake(workdir, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, configfile, yaml.safe_load(configfile.read_text())


def test_demo_writes_every_aggregate(demo_run):
    workdir, _, config = demo_run
    results = workdir / config["results"]
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t")
    expected_points = sum(len(m["steps"]) for m in config["models"].values()) * len(
        config["activations"]["layers"]
    )
    assert len(alignment) == expected_points
    assert set(alignment["model"]) == set(config["models"])
    correlations = pd.read_csv(results / "correlations.tsv", sep="\t")
    assert len(correlations) > 0
    for png in (results / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((results / "figures").glob("*.png"))) >= 5


def test_report_renders(demo_run):
    workdir, configfile, config = demo_run
    report = workdir / "report.html"
    result = snakemake(workdir, "--report", str(report), configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 10_000


def test_nothing_left_to_do_after_a_run(demo_run):
    workdir, configfile, _ = demo_run
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {}, result.stdout[-3000:]


def test_changing_a_probe_setting_reruns_probes_and_what_follows_but_no_dump(demo_run, tmp_path):
    workdir, _, config = demo_run
    config = copy.deepcopy(config)
    config["probe"]["patience"] = config["probe"].get("patience", 50) + 1
    configfile = tmp_path / "probe-change.yaml"
    configfile.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=configfile))
    n_points = sum(len(m["steps"]) for m in config["models"].values()) * len(config["activations"]["layers"])
    assert jobs.get("probe") == n_points * len(config["treebanks"])
    assert set(jobs) == {"probe", "compute_overlap", "alignment_table", "correlations", "plot_figures", "all"}


def test_touching_a_workflow_script_reruns_nothing(demo_run):
    workdir, configfile, _ = demo_run
    script = REPO / "workflow" / "scripts" / "dump_activations.py"
    before = script.stat()
    try:
        os.utime(script)  # what a git checkout does to the scripts
        result = snakemake(workdir, "-n", configfile=configfile)
    finally:
        os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {}, result.stdout[-3000:]


def test_adding_a_step_schedules_only_that_step_and_the_aggregates(demo_run, tmp_path):
    workdir, _, config = demo_run
    config = copy.deepcopy(config)
    model = next(iter(config["models"]))
    spec = config["models"][model]
    new_step = next(s for s in spec["pretrain"]["save_steps"] if s not in spec["steps"])
    spec["steps"] = sorted([*spec["steps"], new_step])
    configfile = tmp_path / "more-steps.yaml"
    # safe_dump also sorts the keys: reordering a config must not rerun anything either.
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    n_treebanks = len(config["treebanks"])
    n_layers = len(config["activations"]["layers"])
    assert jobs.get("dump_activations") == n_treebanks
    assert jobs.get("probe") == n_treebanks * n_layers
    assert jobs.get("compute_overlap") == n_layers
    assert jobs.get("transfer") == len(config["transfer"]["tasks"])
    assert jobs.get("similarity") == 1
    assert set(jobs) <= {
        "dump_activations", "probe", "compute_overlap", "transfer", "similarity",
        "alignment_table", "correlations", "plot_figures", "all",
    }, jobs
