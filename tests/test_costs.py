"""Job costs: requests from input sizes and model shapes, the plan's job counts against Snakemake's dry run."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import yaml
from workflow_runs import REPO, planned_jobs, planned_pairs, planned_wildcards, snakemake

from xlprobe import costs
from xlprobe.plan import plan
from xlprobe.probe import LatentSubsetProbe
from xlprobe.workflow_config import schema_defaults

UNIT = {
    "probe_epoch_ns_per_row_dim": 10.0,
    "probe_epoch_ns_per_row_dim_class": 1.0,
    "greedy_ns_per_row_dim_class_pick": 2.0,
    "probe_best_epoch": 20.0,
}


def test_schema_probe_defaults_are_the_probes():
    """The library's probe, used without a config, trains as the workflow's schema defaults say."""
    defaults = inspect.signature(LatentSubsetProbe).parameters
    schema = schema_defaults("probe")
    shared = set(defaults) & set(schema) - {"device"}  # the probe's cpu is what `auto` resolves to for a probe job
    assert {"max_epochs", "patience", "lr", "batch_size", "mc_samples", "entropy_scale", "restore_best"} <= shared
    for key in shared:
        assert defaults[key].default == schema[key], key


def write_attributes(path, rows):
    path.write_text(
        "attribute\tvalue\ttrain\tdev\ttest\tkept\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    )


def test_attribute_sizes_sum_the_kept_values_and_drop_single_value_attributes(tmp_path):
    path = tmp_path / "en.attributes.tsv"
    write_attributes(
        path,
        [
            ("Part of Speech", "N", 100, 10, 12, "True"),
            ("Part of Speech", "V", 50, 5, 6, "True"),
            ("Part of Speech", "ADJ", 3, 0, 1, "False"),
            ("Number", "SG", 40, 4, 4, "True"),
            ("Number", "PL", 30, 3, 3, "True"),
            ("Number", "DU", 1, 0, 0, "False"),
            ("Case", "NOM", 9, 1, 1, "True"),  # one kept value: not probed
        ],
    )
    assert costs.attribute_sizes(path) == [
        costs.AttributeSize(150, 15, 18, 2),
        costs.AttributeSize(70, 7, 7, 2),
    ]


def test_attribute_table_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.attributes.tsv"
    write_attributes(path, [("Number", "SG", 40, 4, 4, "True"), ("Number", "PL", "many", 3, 3, "True")])
    with pytest.raises(ValueError, match=r"bad.attributes.tsv, line 3"):
        costs.attribute_sizes(path)


def test_probe_seconds_and_memory_by_hand():
    sizes = [costs.AttributeSize(1000, 100, 100, 4), costs.AttributeSize(500, 50, 60, 2)]
    config = {**schema_defaults("probe"), "k": 10, "patience": 5, "max_epochs": 1000}
    epochs = 20 + 5
    train = epochs * (1000 * 64 * (10 + 4) + 500 * 64 * (10 + 2))
    greedy = 100 * 64 * 4 * 10 * 2 + 50 * 64 * 2 * 10 * 2
    assert costs.probe_seconds(sizes, 64, config, UNIT) == pytest.approx((train + greedy) * 1e-9)
    # max_epochs caps the estimate
    assert costs.probe_epochs({"patience": 50, "max_epochs": 30}, UNIT) == 30
    biggest = 4 * 1200 * 64 + 8 * 200 * 64 + 4 * 4 * 64 * 100
    assert costs.probe_memory_mb(sizes, 64, 3000) == pytest.approx(
        costs.BASE_MB + 3000 * costs.WORD_TABLE_BYTES / 1e6 + biggest / 1e6
    )


def test_request_adds_the_safety_factors():
    assert costs.request(600.0, 1000.0) == {
        "runtime": math.ceil(costs.RUNTIME_SAFETY * 10) + costs.START_MINUTES,
        "mem_mb": int(math.ceil(costs.MEMORY_SAFETY * 10) * 100),
    }


def test_probe_request_reads_its_input_files_when_they_exist(tmp_path):
    attributes = tmp_path / "x.attributes.tsv"
    write_attributes(
        attributes, [("Number", "SG", 4000, 400, 400, "True"), ("Number", "PL", 3000, 300, 300, "True")]
    )
    activations = tmp_path / "layer17.npy"
    np.save(activations, np.zeros((9000, 48), dtype=np.float16))
    config = {**schema_defaults("probe"), "k": 5}
    from_files = costs.probe_request(config, attributes_path=attributes, activations_path=activations)
    sizes = [costs.AttributeSize(7000, 700, 700, 2)]
    want = costs.request(
        costs.probe_seconds(sizes, 48, config, costs.unit_costs()), costs.probe_memory_mb(sizes, 48, 9000)
    )
    assert from_files == want
    # before the files exist: the estimate from the treebank's size and the model's width
    estimated = costs.probe_request(config, attributes_path=tmp_path / "none.tsv", tokens=9000, dim=48)
    sizes = costs.estimated_attribute_sizes(9000)
    assert estimated == costs.request(
        costs.probe_seconds(sizes, 48, config, costs.unit_costs()), costs.probe_memory_mb(sizes, 48, 9000)
    )


def test_probe_device_never_auto_selects_a_gpu():
    from xlprobe.devices import job_device

    assert job_device("auto") == "cpu"
    assert job_device(schema_defaults("probe")["device"]) == "cpu"
    assert job_device("cuda") == "cuda"
    assert job_device("cuda:1") == "cuda:1"


def test_unit_costs_missing_a_name_is_named(tmp_path):
    path = tmp_path / "costs.tsv"
    path.write_text("name\tvalue\tunit\tsource\tnote\nprobe_best_epoch\t9\tepochs\tmeasured\t\n")
    with pytest.raises(ValueError, match=r"costs.tsv: missing unit costs \['dump_cpu_gflops'"):
        costs.unit_costs(path)


def test_unknown_treebank_is_named_and_an_unsized_job_gets_the_fixed_request():
    with pytest.raises(ValueError, match="UD_Klingon"):
        costs.tokens_of("UD_Klingon")
    assert costs.tokens_of("UD_Klingon", strict=False) == max(costs.treebank_tokens().values())
    # the rules go on with the fixed requests they made before they were sized
    assert costs.probe_request(schema_defaults("probe"), tokens=1000, dim=None) == {"runtime": 240, "mem_mb": 8000}


def test_shipped_treebank_sizes_match_the_shared_stats(shared_data):
    """Where ../shared/data has a treebank's stats.xml, the shipped token count is its total."""
    import re

    checked = 0
    for folder, tokens in costs.treebank_tokens().items():
        stats = shared_data / "ud-2.1" / folder / "stats.xml"
        if stats.exists():
            total = re.search(r"<total><sentences>\d+</sentences><tokens>(\d+)</tokens>", stats.read_text())
            assert int(total.group(1)) == tokens, folder
            checked += 1
    assert checked >= 10


# BLOOM-560m's config.json (the fields a shape is read from), as bigscience/bloom-560m publishes it.
BLOOM_560M = {"model_type": "bloom", "hidden_size": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 250880}


def seed_hf_cache(cache, repo, revision, model_config):
    """Put a config.json into a Hugging Face cache as huggingface_hub lays one out (refs -> snapshot)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text(json.dumps(model_config))


SHIPPED = ["config.yaml", *sorted(f"config/{p.name}" for p in (REPO / "config").glob("*.yaml") if p.name != "schema.yaml")]


def dry_run_and_plan(configfile, workdir):
    result = snakemake(workdir, "-n", "--quiet", "rules", configfile=configfile, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result), {row["rule"]: row["jobs"] for row in plan(configfile, workdir=workdir)}


@pytest.mark.parametrize("name", SHIPPED)
def test_plan_counts_the_jobs_of_a_dry_run(name, tmp_path, monkeypatch):
    config = yaml.safe_load((REPO / name).read_text())
    for model, spec in config["models"].items():
        if isinstance(spec["steps"], dict):  # a discovery config: its step list recorded, read offline
            from test_family_configs import BRANCHES

            from xlprobe.discovery import matching_branches, record_branches

            family = name.removeprefix("config/").removesuffix(".yaml")
            branches = matching_branches(BRANCHES[family], spec["revision"], spec["steps"])
            record_branches(tmp_path / config["results"] / "steps" / f"{model}.json", spec, branches)
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dry, planned = dry_run_and_plan(REPO / name, tmp_path)
    assert planned == dry


def test_plan_counts_the_recorded_steps_of_a_discovery_config(tmp_path):
    """Discovered steps come from the recorded list; `final` is one more step (4 downloads per model, not
    the selector's 3 keys)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {"bloom-560m": {**config["models"]["bloom-560m"],
                                       "steps": {"discover": True, "every": 100000, "include_final": True}}}
    record = tmp_path / config["results"] / "steps" / "bloom-560m.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"repo": "bigscience/bloom-560m-intermediate", "revision": "global_step{step}",
                                  "steps": [100000, 200000, 300000]}))
    configfile = tmp_path / "discover.yaml"
    configfile.write_text(yaml.safe_dump(config))
    dry, planned = dry_run_and_plan(configfile, tmp_path)
    assert planned == dry
    assert planned["download_checkpoint"] == 4 and planned["dump_activations"] == 4 * len(config["treebanks"])


def english_bloom560m_requests(tmp_path, section, key, value):
    """config.yaml with config[section][key] = value and BLOOM-560m's config.json in its cache, its dry
    run's requests per rule: (the config, a function from a rule to the resources of its jobs on
    bloom-560m and English EWT, the dry run)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config[section][key] = value
    config["hf_cache"] = str(tmp_path / "hf-cache")
    seed_hf_cache(tmp_path / "hf-cache", "bigscience/bloom-560m-intermediate", "global_step1000", BLOOM_560M)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=configfile, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

    def english(rule):
        jobs = planned_pairs(result, rule, "resources")
        where = [(w["model"], w["treebank"]) for w in planned_wildcards(result, rule)]
        return [job for job, at in zip(jobs, where) if at == ("bloom-560m", "en")]

    return {**config, "probe": {**schema_defaults("probe"), **config["probe"]}}, english, result


@pytest.mark.parametrize("device, gpus", [("auto", "0"), ("cuda", "1")])
def test_probe_jobs_ask_for_a_gpu_only_when_the_config_names_one(device, gpus, tmp_path):
    config, english_jobs, result = english_bloom560m_requests(tmp_path, "probe", "device", device)
    jobs = planned_pairs(result, "probe", "resources")
    assert len(jobs) == 350 and {job["gpu"] for job in jobs} == {gpus}
    # English (254,854 tokens) at bloom-560m's width (its config.json) asks what the formula gives
    want = costs.probe_request(config["probe"], tokens=254_854, dim=BLOOM_560M["hidden_size"])
    english = english_jobs("probe")
    assert english and all(int(j["runtime"]) == want["runtime"] for j in english)
    assert all(int(j["mem_mb"]) == want["mem_mb"] for j in english)


@pytest.mark.parametrize("site, widen", [("residual", 1), ("mlp", 4)])
def test_dump_jobs_ask_for_the_memory_of_the_width_they_write(site, widen, tmp_path):
    """At the mlp site a dump writes the MLP's width (4 x hidden in BLOOM) per word and layer; its mem_mb counts them."""
    config, english_jobs, _ = english_bloom560m_requests(tmp_path, "activations", "site", site)
    english = english_jobs("dump_activations")
    hidden = BLOOM_560M["hidden_size"]
    params = 250880 * hidden + 24 * (4 * hidden**2 + 2 * hidden * 4 * hidden)  # embeddings, attention, MLP
    layers = config["activations"]["layers"]
    want = costs.dump_request(254_854, hidden, params, layers, width=widen * hidden)
    # float16 outputs of 254,854 words: 0.5 GB at the residual stream, 2.1 GB at the mlp site (x 1.5,
    # in steps of 100 MB)
    assert want["mem_mb"] - costs.dump_request(254_854, hidden, params, layers)["mem_mb"] == pytest.approx(
        1.5 * 254_854 * 2 * (widen - 1) * hidden * len(layers) / 1e6, abs=100
    )
    assert english and all(int(job["mem_mb"]) == want["mem_mb"] for job in english)


def test_plan_counts_the_mlp_sites_four_times_wider_dumps(tmp_path):
    config = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    residual = {r["rule"]: r for r in plan(config, workdir=tmp_path)}
    config["activations"]["site"] = "mlp"
    mlp = {r["rule"]: r for r in plan(config, workdir=tmp_path)}
    assert mlp["dump_activations"]["disk_gb"] == pytest.approx(4 * residual["dump_activations"]["disk_gb"])
    hours = residual["dump_activations"]["gpu_hours"]
    assert hours > 0 and mlp["dump_activations"]["gpu_hours"] == hours  # the same forward pass
    # A probe's epochs and greedy picks are both linear in D.
    assert mlp["probe"]["cpu_hours"] == pytest.approx(4 * residual["probe"]["cpu_hours"])


def test_plan_command_prints_the_table_with_its_totals(capsys, tmp_path):
    from xlprobe.cli import main

    assert main(["plan", "--config", str(REPO / "config/demo.yaml"), "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "estimates" in out.lower() and "unit_costs.tsv" in out
    total = next(line for line in out.splitlines() if line.startswith("total")).split()
    rows = plan(REPO / "config/demo.yaml", workdir=tmp_path)
    assert int(total[1]) == sum(r["jobs"] for r in rows)
    assert float(total[2]) == pytest.approx(sum(r["cpu_hours"] for r in rows), abs=0.05)
