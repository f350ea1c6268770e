"""Checkpoint checks in a config without `similarity:`, against the local hub: tiny BLOOMs briefly
pre-trained, with broken steps planted (tests/localhub.py). The LM loss comes from the treebanks'
sentences, so a broken checkpoint is flagged in every run, not only in runs with parallel text."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import yaml
from localhub import CHECK_MODELS, CHECK_STEPS, TinyBloom, add_models, checks_config
from test_hub_workflow import small_ud_root
from workflow_runs import snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

BROKEN, ADJACENT, HEALTHY = CHECK_MODELS  # x30 at 40 and 80 = 60; 40 and 60 scrambled; nothing broken


@pytest.fixture(scope="module")
def served(hub_server, shared_data):
    """The local hub, running, serving the three model families above besides its own."""
    if not hub_server.running():
        hub_server.start()
    add_models(hub_server.mirrors, CHECK_MODELS, shared_data)
    return hub_server


def probing_config(workdir: Path, shared: Path, specs: list[TinyBloom]) -> Path:
    """config/hub.yaml's probing part (no transfer, no similarity) with the given models."""
    hub = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(checks_config(hub, small_ud_root(shared, workdir / "ud", hub), specs)))
    return configfile


def test_broken_steps_are_flagged_from_the_treebanks_loss_and_a_healthy_series_is_not(served, shared_data, tmp_path,
                                                                                       capsys):
    """The LM-loss jobs of a config without `similarity:` (the loss of the treebanks' sentences) for the
    three series; the alignment table reads the same flags (tests/test_checks.py, and
    tests/test_hub_workflow.py on a whole run)."""
    from xlprobe.alignment import checkpoint_checks

    specs = (BROKEN, ADJACENT, HEALTHY)
    configfile = probing_config(tmp_path, shared_data, list(specs))
    records = [f"results/hub/lm_loss/{spec.name}/{step}.json" for spec in specs for step in CHECK_STEPS]
    run = snakemake(tmp_path, "--cores", "2", *records, configfile=configfile, env=served.env(cache=tmp_path),
                    timeout=3600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-8000:]
    checks = checkpoint_checks([tmp_path / record for record in records]).set_index(["model", "step"])
    loss = checks["lm_loss"]
    with capsys.disabled():
        for spec in specs:
            print(f"\n{spec.name} LM loss per step (nats): "
                  + ", ".join(f"{step}: {value:.3f}" for step, value in loss[spec.name].items()), file=sys.stderr)
    assert all(math.isfinite(value) for value in loss), loss.to_dict()
    assert checks.index[checks["suspect"]].tolist() == [(BROKEN.name, 40), (ADJACENT.name, 40), (ADJACENT.name, 60)]
    # the broken step far above its neighbours; the republished one a duplicate, with its twin's loss
    broken = loss[BROKEN.name]
    assert broken[40] > max(broken[0], broken[20], broken[60]) + 1.0, broken.to_dict()
    assert checks.loc[BROKEN.name, "duplicate_of"].to_dict() == {0: "", 20: "", 40: "", 60: "", 80: "60"}
    assert broken[80] == broken[60]
    assert (checks.loc[[ADJACENT.name, HEALTHY.name], "duplicate_of"] == "").all()
    # the same training: the healthy steps of the series have the same losses
    for spec, steps in ((BROKEN, (0, 20, 60)), (ADJACENT, (0, 20, 80))):
        assert [loss[(spec.name, s)] for s in steps] == [loss[(HEALTHY.name, s)] for s in steps]
