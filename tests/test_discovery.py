"""Steps discovered from a hub repo's revisions: the selector, and against the local hub server a
branch published later, and a host without network reading the recorded list."""

from __future__ import annotations

import json

import pytest
from hub_server import run_python
from localhub import TinyBloom, add_step, served_tokenizer

from xlprobe.discovery import matching_steps, revision_regex


def test_revision_template_and_selector():
    assert revision_regex("global_step{step}").match("global_step1000").group(1) == "1000"
    assert not revision_regex("global_step{step}").match("global_step1000-fix")
    assert revision_regex("step{step}-tokens4B").match("step3000-tokens4B").group(1) == "3000"
    refs = ["main", "global_step500", "global_step1000", "global_step10000", "global_step150000", "other"]
    assert matching_steps(refs, "global_step{step}", {"discover": True}) == [500, 1000, 10000, 150000]
    assert matching_steps(refs, "global_step{step}", {"every": 1000, "min": 1000, "max": 100000}) == [1000, 10000]


DISCOVER = """
import json
from xlprobe.discovery import discover_steps, DiscoveryError
model = json.loads({model!r})
try:
    print(json.dumps(discover_steps(model, {record!r}, refresh=True)))
except DiscoveryError as error:
    print(json.dumps(str(error)))
"""


def test_a_branch_published_later_is_discovered_and_offline_hosts_read_the_record(local_hub, tmp_path):
    spec = TinyBloom("bloom-disc", steps=(), hidden_size=16)  # a repo of its own: the others stay as built
    tokenizer = served_tokenizer(local_hub.mirrors)
    for step in (1000, 2000, 2500):
        add_step(local_hub.mirrors, spec, tokenizer, step)
    model = {"name": "m", "source": "hub", "repo": spec.intermediate_repo, "revision": "global_step{step}",
             "steps": {"discover": True, "every": 1000, "include_final": True}, "final": {"repo": spec.final_repo}}
    record = tmp_path / "steps" / "m.json"
    code = DISCOVER.format(model=json.dumps(model), record=str(record))

    first = run_python(code, local_hub.env())
    assert first.result == ["1000", "2000", "final"], first.stderr[-2000:]  # 2500 is not a multiple
    assert json.loads(record.read_text())["steps"] == [1000, 2000]
    add_step(local_hub.mirrors, spec, tokenizer, 3000)
    assert run_python(code, local_hub.env()).result == ["1000", "2000", "3000", "final"]
    # no network: the recorded list, not an error
    add_step(local_hub.mirrors, spec, tokenizer, 4000)
    offline = run_python(code, local_hub.env(offline=True))
    assert offline.result == ["1000", "2000", "3000", "final"], offline.stderr[-2000:]
    assert "cannot list the revisions" in offline.stderr
    record.unlink()
    missing = run_python(code, local_hub.env(offline=True))
    assert "there is no recorded list" in missing.result and str(record) in missing.result


def test_a_seeded_repo_is_listed_per_seed_and_keeps_the_steps_every_seed_has(local_hub, tmp_path):
    """PolyPythias-like: one repo per pre-training seed; seed 2 lacks step 3000, so no run gets it."""
    tokenizer = served_tokenizer(local_hub.mirrors)
    for seed, steps in ((1, (1000, 2000, 3000)), (2, (1000, 2000))):
        spec = TinyBloom(f"poly-seed{seed}", steps=(), hidden_size=16)
        for step in steps:
            add_step(local_hub.mirrors, spec, tokenizer, step, seed=10 * seed + step)
    model = {"name": "poly", "source": "hub", "repo": TinyBloom("poly-seed{seed}").intermediate_repo,
             "revision": "global_step{step}", "seeds": [1, 2], "steps": {"discover": True}}
    record = tmp_path / "steps" / "poly.json"
    listed = run_python(DISCOVER.format(model=json.dumps(model), record=str(record)), local_hub.env())
    assert listed.result == ["1000", "2000"], listed.stderr[-2000:]
    assert "models.poly.steps: seed 2 has no branch for steps [3000]" in listed.stderr
    assert json.loads(record.read_text())["branches"] == {"1000": "global_step1000", "2000": "global_step2000"}
    seeded_branch = {**model, "revision": "seed{seed}-step{step}"}
    refused = run_python(DISCOVER.format(model=json.dumps(seeded_branch), record=str(record)), local_hub.env())
    assert "models.poly.revision: a {seed} field cannot be discovered" in refused.result


@pytest.mark.parametrize("steps, message", [
    ({"discover": True, "include_final": True}, "include_final: models.m.final is not set"),
])
def test_discovery_config_errors_name_the_key(steps, message):
    from xlprobe.workflow_config import ConfigError, check_config

    config = {"treebanks": {}, "ud_root": ".", "models": {"m": {"source": "hub", "repo": "a/b", "revision": "s{step}",
                                                          "steps": steps}}}
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.mark.slow
def test_a_branch_published_after_a_run_schedules_only_its_own_jobs(local_hub, shared_data, tmp_path):
    """config/hub.yaml with a discovered model: fetch its checkpoints, publish a branch, rerun."""
    import yaml
    from hub_server import REPO
    from workflow_runs import planned_jobs, planned_wildcards, snakemake

    spec = TinyBloom("bloom-wf", steps=(), hidden_size=16)
    tokenizer = served_tokenizer(local_hub.mirrors)
    for step in (1000, 2000):
        add_step(local_hub.mirrors, spec, tokenizer, step)
    config = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    config["ud_root"] = str(shared_data / "ud-2.1")
    config["models"] = {"tiny": {"source": "hub", "repo": spec.intermediate_repo, "revision": "global_step{step}",
                                 "tokenizer": "tiny-bigscience/bloom", "steps": {"discover": True}}}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    env = local_hub.env(cache=tmp_path)
    fetch = snakemake(tmp_path, "--cores", "2", "--until", "download_checkpoint", configfile=configfile, env=env)
    assert fetch.returncode == 0, fetch.stderr[-3000:]
    assert json.loads((tmp_path / "results/hub/steps/tiny.json").read_text())["steps"] == [1000, 2000]

    add_step(local_hub.mirrors, spec, tokenizer, 3000)
    again = snakemake(tmp_path, "-n", "--until", "download_checkpoint", configfile=configfile, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert planned_jobs(again) == {"download_checkpoint": 1}
    assert planned_wildcards(again, "download_checkpoint") == [{"model": "tiny", "step": "3000"}]
    # the full plan has the new step's jobs: its dumps, transfer and similarity
    plan = snakemake(tmp_path, "-n", configfile=configfile, env=env)
    steps = {job["step"] for job in planned_wildcards(plan, "transfer")}
    assert steps == {"1000", "2000", "3000"}
