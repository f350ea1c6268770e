"""The SLURM profile, for real: a workflow submitted through `--profile slurm` to a SLURM cluster.

The profile checks run everywhere. The cluster tests (marked `slurm`) run when a cluster answers
`sinfo` (it is used and left running), or with XLPROBE_SLURM=1, where scripts/slurm-cluster starts a
single-node cluster (root; installs Debian's packages if missing) and stops it afterwards.
Three workflows: tests/slurm_smoke/ (a CPU rule, then a GPU rule with gpu=1; seconds), the reduced
demo (config/test.yaml, one of its models), whose results must equal the local run's (minutes), and a
tiny Pythia from the local hub server, stopped after the submit host prefetched, whose results must equal
a local run's from the same cache (minutes).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_hub_families import families_config, serve_families
from test_hub_workflow import FETCHING, point_targets, ran_jobs
from tiny_families import INTERMEDIATE
from workflow_runs import result_files, same_result
from workflow_runs import snakemake as snakemake_workflow

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tests" / "slurm_smoke"
PROFILES = {name: REPO / "profiles" / name / "config.yaml" for name in ("slurm", "workstation")}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------------------------------ profiles
def test_profile_names_resolve_from_the_repo_root(monkeypatch):
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    # `snakemake --profile slurm` looks for ./slurm, then the user's and the site's config dirs
    found = get_profile_dir("slurm")
    assert found is not None, "`--profile slurm` does not resolve from the repository root"
    assert found[1].resolve() == PROFILES["slurm"].resolve()
    found = get_profile_dir("profiles/workstation")
    assert found is not None and found[1].resolve() == PROFILES["workstation"].resolve()


def test_profile_keys_are_options_snakemake_accepts():
    from snakemake.cli import get_argument_parser

    options = {s for action in get_argument_parser()._actions for s in action.option_strings}
    for name, path in PROFILES.items():
        unknown = sorted(key for key in load(path) if f"--{key}" not in options)
        assert not unknown, f"profiles/{name}: not options of this Snakemake and its plugins: {unknown}"


def test_slurm_profile_works_without_accounting():
    profile = load(PROFILES["slurm"])
    assert profile["executor"] == "slurm"
    # sacct fails without slurmdbd and the run then waits forever (notes/local-slurm.md)
    assert profile["slurm-status-command"] == "squeue"
    assert profile["slurm-init-seconds-before-status-checks"] == 1
    resources = profile["default-resources"]
    assert isinstance(resources["runtime"], int)
    # the site's partition and account: left for the site to fill in, not set to a placeholder here
    assert "slurm_partition" not in resources and "slurm_account" not in resources
    text = PROFILES["slurm"].read_text()
    assert "# slurm_partition:" in text and "# slurm_account:" in text


def test_workstation_profile_serializes_gpu_jobs_and_is_not_auto_loaded():
    profile = load(PROFILES["workstation"])
    assert profile["executor"] == "local"
    assert profile["cores"] == 8
    assert profile["resources"] == {"gpu": 1}
    assert profile["use-conda"] is True
    # Snakemake loads profiles/default/ (and only that) as the workflow profile without being asked:
    # it holds when to rerun only, nothing that picks an executor or resources
    assert load(REPO / "profiles" / "default" / "config.yaml") == {
        "rerun-triggers": ["mtime", "params", "input", "software-env"],
        "rerun-incomplete": True,
    }


# ------------------------------------------------------------------------------------ the cluster
def snakemake(args: list[str], cwd: Path, timeout: int = 600) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - t0


def read_lines(path: Path) -> dict[str, dict[str, str]]:
    """`result k=v` and `env k=v` lines of a smoke output, by kind."""
    out: dict[str, dict[str, str]] = {"result": {}, "env": {}}
    for line in path.read_text().splitlines():
        kind, _, pair = line.partition(" ")
        key, _, value = pair.partition("=")
        out[kind][key] = value
    return out


@pytest.mark.slurm
def test_smoke_workflow_through_slurm_matches_a_local_run(slurm_cluster, tmp_path, capsys):
    local = tmp_path / "local"
    shutil.copytree(SMOKE, local)
    done, local_s = snakemake(["--cores", "1", "--resources", "gpu=1"], cwd=local)
    assert done.returncode == 0, done.stderr[-3000:]

    work = tmp_path / "slurm"
    shutil.copytree(SMOKE, work)
    done, slurm_s = snakemake(["--profile", str(REPO / "slurm")], cwd=work)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    with capsys.disabled():
        print(f"\nsmoke workflow: local {local_s:.1f} s, through SLURM {slurm_s:.1f} s", file=sys.stderr)

    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(job_ids) == 2, "expected the two rules to go to SLURM as two jobs:\n" + log[-3000:]

    cpu, gpu = read_lines(work / "results/cpu.txt"), read_lines(work / "results/gpu.txt")
    assert {cpu["env"]["slurm_job_id"], gpu["env"]["slurm_job_id"]} == set(job_ids)
    assert cpu["env"]["cpus_per_task"] == "1"  # threads: 1
    # the GPU rule asked for its GPU (the test cluster's fake one is device 0)
    assert re.fullmatch(r"\d+(,\d+)*", gpu["env"]["cuda_visible_devices"]), gpu
    for name in ("cpu.txt", "gpu.txt"):
        assert read_lines(work / "results" / name)["result"] == read_lines(local / "results" / name)["result"]
    assert gpu["result"] == {"words": "5", "double": "10"}


@pytest.mark.slurm
def test_failed_slurm_job_fails_the_run_and_leaves_no_output(slurm_cluster, tmp_path):
    work = tmp_path / "slurm"
    shutil.copytree(SMOKE, work)
    (work / "results").mkdir()
    # the CPU rule's output exists; only the GPU rule runs, without its GPU, and so fails
    (work / "results/cpu.txt").write_text("result words=5\n")
    done, _ = snakemake(
        ["--profile", str(REPO / "slurm"), "--set-resources", "use_gpu:gpu=0"], cwd=work, timeout=300
    )
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-3000:]
    assert re.search(r"submitted with SLURM jobid \d+", log), log[-3000:]
    assert "Error in rule use_gpu" in log, log[-3000:]
    assert not (work / "results/gpu.txt").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_demo_through_slurm_matches_the_local_run(slurm_cluster, demo_run, tmp_path, capsys):
    local, _, config, local_seconds = demo_run
    # One treebank's dump and probe at one checkpoint of one of the demo's models, and what they need:
    # the demo's own rules (its data, tokenizer and pre-training) and the word table. A dump and a probe
    # depend on nothing of the other checkpoints, so they must equal the local run's byte for byte.
    # Every other per-checkpoint rule goes through SLURM in the Pythia test below (CI time).
    config = copy.deepcopy(config)
    model, step, treebank = next(iter(config["models"])), "400", "xa"
    config["models"] = {model: config["models"][model]}
    workdir = tmp_path / "slurm"
    workdir.mkdir()
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    local_results = local / config["results"]
    targets = [Path(config["results"]) / relative for relative in result_files(local_results, model)
               if relative.parts[0] in ("activations", "probes") and relative.parts[2] == step
               and treebank in (relative.parts[3], relative.stem)]
    assert len(targets) == 3, targets  # the dump, its meta.json and the probe
    done = snakemake_workflow(workdir, "--profile", str(REPO / "slurm"), *map(str, targets),
                              configfile=configfile, timeout=1500)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    job_ids = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    with capsys.disabled():
        print(f"\ndemo ({model}, step {step}): through SLURM {done.seconds:.0f} s, {len(job_ids)} SLURM jobs; "
              f"local run of both models {local_seconds:.0f} s", file=sys.stderr)

    results = workdir / config["results"]
    files = result_files(results, model)
    assert sorted(Path(config["results"]) / relative for relative in files) == sorted(targets)
    assert {relative.parts[0] for relative in files} == {"activations", "probes"}, files
    for relative in files:
        assert same_result(results / relative, local_results / relative), relative
    for relative in (f"words/{treebank}.tsv", f"words/{treebank}.attributes.tsv"):
        assert same_result(results / relative, local_results / relative), relative
    # every job but the local rules went to SLURM, and the dumps say which job made them
    for meta in (results / "activations").rglob("meta.json"):
        record = json.loads(meta.read_text())["provenance"]
        assert record.get("slurm_job_id") in job_ids, meta


@pytest.mark.slurm
@pytest.mark.slow
def test_pythia_through_slurm_with_the_server_stopped_matches_the_local_run(
    slurm_cluster, hub_server, shared_data, tmp_path, capsys
):
    """A hub model of another family than the demo's BLOOM (a tiny GPT-NeoX with Pythia's branch names, its
    MLP neurons), the compute nodes reading the cache alone: every fetching job runs on the submit host, then
    one checkpoint's per-checkpoint jobs (every such rule) go to SLURM with the server stopped. The same
    targets run locally from the same cache give the same results, file by file."""
    if not hub_server.running():
        hub_server.start()
    model, step = "pythia-tiny", "1000"
    serve_families(hub_server, models=[model])
    configs = {}
    for where in ("slurm", "local"):
        configfile, config = families_config(tmp_path, shared_data, "mlp", f"results/{where}")
        config["models"] = {model: {**config["models"][model], "steps": [int(step)]}}
        configfile = configfile.with_name(f"{where}.yaml")
        configfile.write_text(yaml.safe_dump(config))
        configs[where] = configfile, config
    # the rules ask for a real model's memory (16 GB for transfer) and 2 cores; the test node has less
    # memory and 2 cores: one core each lets two jobs run at once
    rules = ("dump_activations", "probe", "probe_transfer", "transfer", "similarity")
    threads = ("--set-threads", *[f"{rule}=1" for rule in rules])
    profile = ("--profile", str(REPO / "slurm"), "--set-resources", *[f"{rule}:mem_mb=2000" for rule in rules],
               *threads)
    env = hub_server.env(cache=tmp_path)  # HF_ENDPOINT at the server; the workflow sets offline mode itself
    configfile, config = configs["slurm"]
    fetch = snakemake_workflow(tmp_path, *profile, "--until", *sorted(FETCHING), configfile=configfile, env=env,
                               timeout=1500)
    fetch_log = fetch.stdout + fetch.stderr
    assert fetch.returncode == 0, fetch_log[-5000:]
    hub_server.stop()
    # the targets after `--`: --set-threads and --set-resources take every word after them
    rest = snakemake_workflow(tmp_path, *profile, "--", *point_targets(config, model, step), configfile=configfile,
                              env=env, timeout=1500)
    rest_log = rest.stdout + rest.stderr
    assert rest.returncode == 0, rest_log[-8000:]
    # phase 1 fetched the checkpoint and the datasets on the submit host; phase 2 fetched nothing
    fetched, ran = ran_jobs(fetch_log), ran_jobs(rest_log)
    assert set(fetched) == FETCHING and fetched["download_checkpoint"] == 1, fetched
    assert not re.search(r"submitted with SLURM jobid", fetch_log), fetch_log[-3000:]
    assert not FETCHING & set(ran), ran
    assert {"dump_activations", "probe", "compute_overlap", "probe_transfer", "transfer", "similarity",
            "lm_loss"} <= set(ran), ran
    # every job of phase 2 went to SLURM
    submitted = len(set(re.findall(r"submitted with SLURM jobid (\d+)", rest_log)))
    assert submitted == sum(ran.values()), (submitted, ran)

    local_file, local_config = configs["local"]
    local = snakemake_workflow(tmp_path, "--cores", "2", *threads, "--", *point_targets(local_config, model, step),
                               configfile=local_file, env=env, timeout=1500)
    assert local.returncode == 0, (local.stdout + local.stderr)[-5000:]
    slurm_results, local_results = tmp_path / config["results"], tmp_path / local_config["results"]
    files = result_files(slurm_results, model)
    assert files == result_files(local_results, model)
    assert {relative.parts[0] for relative in files} == {"activations", "probes", "overlap", "stability",
                                                        "probe_transfer", "transfer", "similarity", "lm_loss"}
    for relative in files:
        assert same_result(slurm_results / relative, local_results / relative), relative
    for meta in (slurm_results / "activations").rglob("meta.json"):
        assert json.loads(meta.read_text())["width"] == INTERMEDIATE, meta
    with capsys.disabled():
        print(f"\n{model} through SLURM: prefetch {fetch.seconds:.0f} s (local rules), one checkpoint "
              f"{rest.seconds:.0f} s ({submitted} SLURM jobs); the same targets locally {local.seconds:.0f} s",
              file=sys.stderr)
