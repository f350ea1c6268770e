"""Checkpoint checks in a config without `similarity:`, against the local hub: tiny BLOOMs briefly
pre-trained, with broken steps planted (tests/localhub.py). The LM loss comes from the treebanks'
sentences, so a broken checkpoint is flagged in every run, not only in runs with parallel text."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from localhub import CHECK_MODELS, CHECK_STEPS, TinyBloom, add_models, checks_config
from test_hub_workflow import small_ud_root
from workflow_runs import snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

BROKEN, ADJACENT, HEALTHY = CHECK_MODELS  # x30 at 40 and 80 = 60; 40 and 60 scrambled; nothing broken
# The served steps from the last healthy one before the broken ones (CI time: each step is a download
# and the jobs of a checkpoint)
STEPS = tuple(step for step in CHECK_STEPS if step >= 20)


@pytest.fixture(scope="module")
def served(hub_server, shared_data):
    """The local hub, running, serving the three model families above besides its own."""
    if not hub_server.running():
        hub_server.start()
    add_models(hub_server.mirrors, CHECK_MODELS, shared_data)
    return hub_server


def probing_config(workdir: Path, shared: Path, specs: list[TinyBloom], steps=CHECK_STEPS,
                   treebanks: tuple[str, ...] | None = None) -> Path:
    """config/hub.yaml's probing part (no transfer, no similarity) with the given models, steps and
    treebanks (default: all of hub.yaml's)."""
    hub = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    if treebanks:
        hub["treebanks"] = {name: hub["treebanks"][name] for name in treebanks}
    configfile = workdir / "config.yaml"
    ud_root = small_ud_root(shared, workdir / "ud", hub)
    configfile.write_text(yaml.safe_dump(checks_config(hub, ud_root, specs, steps)))
    return configfile


def test_a_config_without_similarity_flags_the_broken_step(served, shared_data, tmp_path, capsys):
    # the whole workflow down to alignment.tsv, on two languages (CI time: a checkpoint costs a dump and
    # a probe per language and the overlap of each pair)
    configfile = probing_config(tmp_path, shared_data, [BROKEN], steps=STEPS, treebanks=("mr", "vi"))
    run = snakemake(tmp_path, "--cores", "2", configfile=configfile, env=served.env(cache=tmp_path), timeout=3600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-8000:]
    alignment = pd.read_csv(tmp_path / "results/hub/alignment.tsv", sep="\t", dtype={"step": str, "duplicate_of": str})
    points = alignment.drop_duplicates(["model", "step"]).set_index("step")
    loss = points["lm_loss"]
    with capsys.disabled():
        print(f"\n{BROKEN.name} LM loss per step (nats): "
              + ", ".join(f"{step}: {value:.3f}" for step, value in loss.items()), file=sys.stderr)
    assert all(math.isfinite(value) for value in loss), loss.to_dict()
    assert points.index[points["suspect"]].tolist() == ["40"], points[["lm_loss", "suspect"]]
    assert loss["40"] > max(loss["20"], loss["60"]) + 1.0, loss.to_dict()
    assert points["duplicate_of"].fillna("").to_dict() == {"20": "", "40": "", "60": "", "80": "60"}
    assert loss["80"] == loss["60"]
    log = (tmp_path / "results/hub/logs/alignment_table.log").read_text()
    assert f"{BROKEN.name}: step 80 holds the same weights as step 60" in log, log[-3000:]
    assert re.search(rf"WARNING .*{BROKEN.name}: step 40 is suspect: LM loss [\d.]+ nats", log), log[-3000:]
    # the verdict's loss is that of the two configured treebanks' sentences
    record = json.loads((tmp_path / "results/hub/lm_loss" / BROKEN.name / "40.json").read_text())
    assert set(record["languages"]) == {"mr", "vi"}, record["languages"]


def test_two_neighbouring_broken_steps_are_both_flagged_and_a_healthy_series_nothing(served, shared_data, tmp_path,
                                                                                    capsys):
    from xlprobe.alignment import checkpoint_checks

    configfile = probing_config(tmp_path, shared_data, [ADJACENT, HEALTHY], steps=STEPS)
    records = [f"results/hub/lm_loss/{spec.name}/{step}.json" for spec in (ADJACENT, HEALTHY) for step in STEPS]
    run = snakemake(tmp_path, "--cores", "2", *records, configfile=configfile, env=served.env(cache=tmp_path),
                    timeout=3600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-8000:]
    checks = checkpoint_checks([tmp_path / record for record in records]).set_index(["model", "step"])
    with capsys.disabled():
        for model in (ADJACENT.name, HEALTHY.name):
            print(f"\n{model} LM loss per step (nats): "
                  + ", ".join(f"{step}: {value:.3f}" for step, value in checks.loc[model, "lm_loss"].items()),
                  file=sys.stderr)
    assert checks.index[checks["suspect"]].tolist() == [(ADJACENT.name, 40), (ADJACENT.name, 60)]
    # the same training: the healthy steps of both series have the same losses
    loss = checks["lm_loss"]
    assert [loss[(ADJACENT.name, s)] for s in (20, 80)] == [loss[(HEALTHY.name, s)] for s in (20, 80)]
