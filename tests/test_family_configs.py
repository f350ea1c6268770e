"""config/pythia.yaml and config/olmo2.yaml: valid, and planned offline from a recorded step list as
discovery writes it from the families' real branch names (Pythia's step<N>; OLMo-2's stage-1 and
stage-2 branches with their token counts)."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_runs import planned_jobs, planned_wildcards, snakemake

from xlprobe.discovery import matching_branches, record_branches
from xlprobe.workflow_config import check_config

REPO = Path(__file__).resolve().parents[1]
PYTHIA = ["main", *(f"step{s}" for s in [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 143001, 1000)])]


def olmo2_tokens(step: int) -> int:
    return math.ceil(step * 4_194_304 / 1e9)  # 1024 sequences of 4096 tokens per step, in billions rounded up


OLMO2 = ["main", *(f"stage1-step{s}-tokens{olmo2_tokens(s)}B" for s in range(10000, 1_900_001, 10000)),
         *(f"stage2-ingredient{i}-step{s}-tokens{olmo2_tokens(s)}B" for i in (1, 2, 3) for s in range(1000, 12001, 1000))]
BRANCHES = {"pythia": PYTHIA, "olmo2": OLMO2}


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["pythia", "olmo2"])
def test_family_config_is_valid(name, tmp_path):
    check_config(load(name), workdir=tmp_path, schema_path=REPO / "config" / "schema.yaml")


@pytest.mark.parametrize("name, steps", [("pythia", 15), ("olmo2", 19)])
def test_family_config_dry_runs_offline_from_the_recorded_steps(name, steps, tmp_path):
    config = load(name)
    expected = {}
    for model, spec in config["models"].items():
        branches = matching_branches(BRANCHES[name], spec["revision"], spec["steps"])
        assert len(branches) == steps
        record_branches(tmp_path / config["results"] / "steps" / f"{model}.json", spec, branches)
        final = ["final"] if spec["steps"].get("include_final") else []
        for run in [f"{model}-seed{seed}" for seed in spec["seeds"]] if "seeds" in spec else [model]:
            expected[run] = [str(s) for s in branches] + final
    if name == "olmo2":  # stage 2 restarts its step count: none of its branches may be among the steps
        assert all(b.startswith("stage1-") for b in matching_branches(OLMO2, config["models"]["olmo2-1b"]["revision"]).values())
    done = snakemake(tmp_path, "-n", configfile=REPO / "config" / f"{name}.yaml", timeout=600,
                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "using the recorded list" in done.stdout + done.stderr
    planned = Counter((w["model"], w["step"]) for w in planned_wildcards(done, "download_checkpoint"))
    assert planned == Counter((m, s) for m, model_steps in expected.items() for s in model_steps)
    points = sum(len(s) for s in expected.values())
    jobs = planned_jobs(done)
    assert jobs["dump_activations"] == points * len(config["treebanks"])
    assert jobs["transfer"] == points * len(config["transfer"]["tasks"])
