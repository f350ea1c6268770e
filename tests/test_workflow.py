"""The workflow end to end on a reduced demo (config/test.yaml), and its incremental reruns."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runs import planned_field, planned_jobs, planned_wildcards, result_files, same_result, snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_demo_writes_every_aggregate(demo_run):
    workdir, _, config, _ = demo_run
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


def test_a_udpos_task_without_format_reads_the_word_tables(tmp_path):
    # config/test.yaml is the .test config of this branch: its POS task names no format (conllu by
    # default); config/demo.yaml names it. The DAG must give the job the word tables it will read.
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    task = config["transfer"]["tasks"]["pos"]
    assert task["type"] == "udpos" and "format" not in task
    model, step = next(iter(config["models"].items()))
    target = f"{config['results']}/transfer/{model}/{step['steps'][-1]}/pos.tsv"
    done = snakemake(tmp_path, "-n", target, configfile=REPO / "config" / "test.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    tables = [f"{config['results']}/words/{tb}.tsv" for tb in [task["source"], *task["targets"]]]
    inputs = planned_field(done, "transfer", "input")
    assert len(inputs) == 1 and set(tables) <= set(inputs[0].split(", ")), inputs
    assert planned_jobs(done)["build_word_table"] == len(tables)


def test_report_renders(demo_run):
    workdir, configfile, _, _ = demo_run
    report = workdir / "report.html"
    result = snakemake(workdir, "--report", str(report), configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 10_000


def test_nothing_left_to_do_after_a_run(demo_run):
    workdir, configfile, _, _ = demo_run
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {}, result.stdout[-3000:]


def test_changing_a_probe_setting_reruns_probes_and_what_follows_but_no_dump(demo_run, tmp_path):
    workdir, _, config, _ = demo_run
    config = copy.deepcopy(config)
    config["probe"]["patience"] = config["probe"].get("patience", 50) + 1
    configfile = tmp_path / "probe-change.yaml"
    configfile.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=configfile))
    n_points = sum(len(m["steps"]) for m in config["models"].values()) * len(config["activations"]["layers"])
    assert jobs.get("probe") == n_points * len(config["treebanks"])
    assert set(jobs) == {"probe", "compute_overlap", "alignment_table", "correlations", "plot_figures", "all"}


def test_touching_a_workflow_script_reruns_nothing(demo_run):
    workdir, configfile, _, _ = demo_run
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
    workdir, _, config, _ = demo_run
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
    assert jobs.get("lm_loss") == 1
    assert jobs.get("probe_transfer") == n_layers
    assert set(jobs) <= {
        "dump_activations", "probe", "compute_overlap", "transfer", "similarity", "lm_loss", "probe_transfer",
        "alignment_table", "correlations", "plot_figures", "all",
    }, jobs


def n_points(config) -> int:
    return sum(len(m["steps"]) for m in config["models"].values())


def test_adding_a_language_schedules_only_its_jobs_and_the_aggregates(demo_run, tmp_path):
    workdir, _, config, _ = demo_run
    config = copy.deepcopy(config)
    new = next(code for code in config["demo"]["languages"] if code not in config["treebanks"])
    config["treebanks"][new] = {"folder": f"UD_Synth-{new.capitalize()}", "language": new}
    configfile = tmp_path / "more-languages.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    n_layers = len(config["activations"]["layers"])
    # the demo's data and models stay; every overlap gains the new language's pairs, every checkpoint's
    # LM loss its sentences
    assert planned_jobs(result) == {
        "build_word_table": 1,
        "dump_activations": n_points(config),
        "probe": n_points(config) * n_layers,
        "compute_overlap": n_points(config) * n_layers,
        "lm_loss_sample": 1, "lm_loss": n_points(config),
        "probe_transfer": n_points(config) * n_layers,
        "alignment_table": 1, "correlations": 1, "plot_figures": 1, "all": 1,
    }, result.stdout[-3000:]


def test_adding_a_layer_schedules_its_dumps_and_probes_but_no_old_probe(demo_run, tmp_path):
    workdir, _, config, _ = demo_run
    config = copy.deepcopy(config)
    old = config["activations"]["layers"]
    config["activations"]["layers"] = sorted({1, *old})
    assert len(config["activations"]["layers"]) == len(old) + 1
    configfile = tmp_path / "more-layers.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    n_treebanks = len(config["treebanks"])
    # one forward pass writes every layer, so each dump runs again; only the new layer is probed
    assert planned_jobs(result) == {
        "dump_activations": n_points(config) * n_treebanks,
        "probe": n_points(config) * n_treebanks,
        "compute_overlap": n_points(config),
        "probe_transfer": n_points(config),
        "alignment_table": 1, "correlations": 1, "plot_figures": 1, "all": 1,
    }, result.stdout[-3000:]
    assert {job["layer"] for job in planned_wildcards(result, "probe")} == {"1"}


def test_changing_the_batch_size_reruns_nothing(demo_run, tmp_path):
    workdir, _, config, _ = demo_run
    config = copy.deepcopy(config)
    config["activations"]["batch_size"] = config["activations"]["batch_size"] // 2  # after running out of memory
    configfile = tmp_path / "smaller-batches.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {}, result.stdout[-3000:]


# Loaded into every Python process of the run below (a sitecustomize on PYTHONPATH): a dump that has
# written a layer completely stops before renaming it into place, says so in a file, and waits there to
# be killed. The kill then always falls mid-dump, however fast the machine.
HOLD_THE_DUMP = """
import os, pathlib, time

_replace = os.replace


def replace(src, dst, *args, **kwargs):
    path = pathlib.Path(src)
    if path.name.startswith(".layer") and "activations" in path.parts:
        pathlib.Path(os.environ["XLPROBE_TEST_DUMP_HELD"]).touch()
        time.sleep(3600)
    return _replace(src, dst, *args, **kwargs)


os.replace = replace
"""


def test_a_run_killed_mid_dump_resumes_to_the_same_results(demo_run, tmp_path):
    reference, _, config, _ = demo_run
    workdir = tmp_path / "work"
    # the demo's data and models from the finished run (times kept), so that the dumps come first
    shutil.copytree(reference / config["demo"]["dir"], workdir / config["demo"]["dir"])
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    model = next(iter(config["models"]))
    step, layer = config["models"][model]["steps"][-1], config["activations"]["layers"][0]
    target = f"{config['results']}/overlap/{model}/{step}/layer{layer}.tsv"

    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(configfile), "--cores", "1", target]
    hook, held = tmp_path / "hook", tmp_path / "dump-held"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_THE_DUMP)
    env = {**os.environ, "XLPROBE_TEST_DUMP_HELD": str(held),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                           env=env)
    deadline = time.monotonic() + 600
    try:
        # the dump announces that it holds a finished layer under its temporary name and waits
        while not held.exists():
            assert run.poll() is None and time.monotonic() < deadline, "no dump reached its rename"
            time.sleep(0.1)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the node is lost: nothing runs, no clean-up
        run.wait()
    results = workdir / config["results"]
    left = [p for p in results.rglob(".*") if p.is_file()]
    assert left, "the killed dump left no temporary file"
    # nothing that looks finished is unfinished: every result file present is the complete one
    for relative in result_files(results):
        assert same_result(results / relative, reference / config["results"] / relative), relative

    assert snakemake(workdir, "--unlock", configfile=configfile).returncode == 0
    resumed = snakemake(workdir, "--cores", "2", target, configfile=configfile)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not [p for p in results.rglob(".*") if p.is_file()], "temporary files left behind"
    finished = result_files(results)
    assert f"overlap/{model}/{step}/layer{layer}.tsv" in map(str, finished)
    for relative in finished:
        assert same_result(results / relative, reference / config["results"] / relative), relative


def test_demo_measures_what_it_should(demo_run):
    """Science, not counts: training makes part of speech easier to read off the neurons, and two
    languages that share no stems and never code-switch keep neuron sets that overlap at chance."""
    import json

    from scipy.stats import hypergeom

    workdir, _, config, _ = demo_run
    results = workdir / config["results"]
    layer = config["activations"]["layers"][0]
    for model, spec in config["models"].items():
        first, last = str(spec["steps"][0]), str(spec["steps"][-1])
        # Mean over the languages: at this tiny scale (hidden 32-48, 400 steps) one language's POS score
        # can still sit below its random-initialisation value (xa: 0.18 -> 0.15 for demo-32).
        scores = {
            step: [
                json.loads((results / "probes" / model / step / f"layer{layer}" / f"{treebank}.json").read_text())
                ["attributes"]["Part of Speech"]["dev_score"][-1]
                for treebank in config["treebanks"]
            ]
            for step in (first, last)
        }
        assert sum(scores[last]) > sum(scores[first]), (model, scores)
        overlap = pd.read_csv(results / "overlap" / model / last / f"layer{layer}.tsv", sep="\t")
        k = overlap["k"].max()
        pair = overlap[(overlap["k"] == k) & (overlap["language_a"] == "xb") & (overlap["language_b"] == "xc")]
        assert len(pair) >= 3 and not (pair["p_holm"] < 0.05).any(), pair
        width = round(k / pair["chance"].iloc[0])
        # The mean over attributes of independent hypergeometric shares: within 3 of its null SDs.
        null_sd = hypergeom(width, k, k).std() / k / len(pair) ** 0.5
        assert abs(pair["overlap"].mean() - k / width) <= 3 * null_sd, pair
