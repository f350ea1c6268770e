"""The config resolved once: defaults from the schema only, devices, the demo, hub splits, steps."""

from __future__ import annotations

import json

import yaml
from workflow_runs import REPO, planned_jobs, snakemake

from xlprobe.resolved_config import resolve_config
from xlprobe.workflow_config import SCHEMA


def load(name):
    return yaml.safe_load((REPO / name).read_text())


def schema_node(node, root):
    """A schema node with its $ref resolved (the node's own keys, such as `default:`, win)."""
    if "$ref" not in node:
        return node
    return {**root["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}


def without_defaulted_keys(value, node, root):
    """`value` with every key that has a schema `default:` removed, at any depth."""
    node = schema_node(node, root)
    if not isinstance(value, dict):
        return value
    properties, extra = node.get("properties") or {}, node.get("additionalProperties")
    kept = {}
    for key, item in value.items():
        sub = schema_node(properties.get(key, extra if isinstance(extra, dict) else {}), root)
        if key in properties and "default" in sub and not isinstance(item, dict):
            continue
        kept[key] = without_defaulted_keys(item, sub, root)
    return kept


def test_a_config_without_any_defaulted_key_plans_the_same_jobs(tmp_path):
    schema = yaml.safe_load(SCHEMA.read_text())
    full = load("config/test.yaml")
    bare = without_defaulted_keys(full, schema, schema)
    assert "max_subwords" not in bare["words"] and "patience" not in bare["probe"]  # the strip strips
    # probe.k's default (the paper's 50) is wider than the demo models' 32 neurons: a stop of its own.
    bare["probe"]["k"] = full["probe"]["k"]
    counts = {}
    for name, config in (("full", full), ("bare", bare)):
        configfile = tmp_path / f"{name}.yaml"
        configfile.write_text(yaml.safe_dump(config))
        done = snakemake(tmp_path / name, "-n", "--quiet", "rules", configfile=configfile, timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        counts[name] = planned_jobs(done)
    assert counts["bare"] == counts["full"] and counts["full"]["probe"] > 0


def test_auto_is_the_cpu_for_a_probe_job_and_a_named_gpu_stays(tmp_path):
    config = load("config/demo.yaml")
    config["probe"].pop("device", None)
    assert resolve_config(config, workdir=tmp_path).probe_device == "cpu"
    config["probe"]["device"] = "cuda:1"
    assert resolve_config(config, workdir=tmp_path).config["probe"]["device"] == "cuda:1"


def test_the_demo_and_its_directory(tmp_path):
    demo = load("config/demo.yaml")
    demo["demo"].pop("dir")
    resolved = resolve_config(demo, workdir=tmp_path)
    assert resolved.is_demo and resolved.demo_dir == "resources/demo" and resolved.demo_models == list(demo["models"])
    paper = resolve_config(load("config.yaml"), workdir=tmp_path)
    assert not paper.is_demo and paper.demo_models == []


def test_hub_datasets_carry_the_splits_the_tasks_read(tmp_path):
    config = load("config/hub.yaml")
    resolved = resolve_config(config, workdir=tmp_path)
    datasets = resolved.hub_datasets
    # the source reads train and validation, each target its eval_split (the schema's default: test)
    assert datasets[("facebook/xnli", "en")] == ["train", "validation"]
    assert datasets[("facebook/xnli", "vi")] == datasets[("google/xtreme", "udpos.Tamil")] == ["test"]
    config = load("config/hub.yaml")
    config["transfer"]["tasks"]["xnli"]["eval_split"] = "validation"
    assert resolve_config(config, workdir=tmp_path).hub_datasets[("facebook/xnli", "vi")] == ["validation"]


def test_discovered_steps_are_read_from_the_record(tmp_path):
    config = load("config.yaml")
    config["models"]["bloom-560m"]["steps"] = {"discover": True, "include_final": True}
    record = tmp_path / config["results"] / "steps" / "bloom-560m.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"steps": [1000, 5000],
                                  "branches": {"1000": "global_step0001000", "5000": "global_step0005000"}}))
    resolved = resolve_config(config, workdir=tmp_path)
    assert resolved.steps["bloom-560m"] == ["1000", "5000", "final"]
    assert ("bloom-560m", "final") in resolved.points() and len(resolved.points()) == 3 + 9 + 7
    # the branches as listed; none for the models with a step list
    assert resolved.branches == {"bloom-560m": {"1000": "global_step0001000", "5000": "global_step0005000"},
                                 "bloom-1b1": {}, "bloom-1b7": {}}
