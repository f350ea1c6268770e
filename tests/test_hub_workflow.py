"""config/hub.yaml end to end against the local hub server (its model with discovered steps and a
broken one): the prefetch jobs fetch every hub object, the server is stopped, and the rest of the run
completes on the cache alone (through SLURM: tests/test_slurm.py)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runs import planned_jobs, planned_wildcards, snakemake

REPO = Path(__file__).resolve().parents[1]
FETCHING = {"download_checkpoint", "prefetch_dataset"}
pytestmark = pytest.mark.slow


def small_ud_root(shared: Path, root: Path, config: dict, sentences: int = 120) -> Path:
    """The configured treebanks' real files, each cut to its first `sentences` sentences (CI time)."""
    from localhub import cut_treebanks

    return cut_treebanks(shared / "ud-2.1", root, config["treebanks"], sentences)


def hub_config(workdir: Path, shared: Path, models: list[str] | None = None,
               discover: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """config/hub.yaml for a test: its models (or some), the `discover` ones with their steps listed from
    the served branches (recorded in results/hub/steps/<model>.json, read once the server is stopped)."""
    config = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    config["ud_root"] = str(small_ud_root(shared, workdir / "ud", config))
    if models:
        config["models"] = {name: config["models"][name] for name in models}
    for name in discover:
        config["models"][name]["steps"] = {"discover": True, "include_final": True}
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return configfile, config


def ran_jobs(log: str) -> dict[str, int]:
    """Rule -> jobs run, from a run's log ("rule x:" or "localrule x:" headers)."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$", log, flags=re.MULTILINE):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def run_with_the_server_stopped_after_prefetch(hub, workdir: Path, shared: Path, *args: str, models=None,
                                                discover=(), targets=()):
    """Phase 1: the fetching rules only, the server up. Phase 2: the server stopped, everything else (or
    the `targets`). Neither sets offline mode itself: the workflow does. Returns (phase 1, phase 2, config)."""
    configfile, config = hub_config(workdir, shared, models, discover)
    env = hub.env(cache=workdir)  # HF_ENDPOINT at the server, no offline switches
    fetch = snakemake(workdir, *args, "--until", *sorted(FETCHING), configfile=configfile, env=env, timeout=3600)
    assert fetch.returncode == 0, (fetch.stdout + fetch.stderr)[-5000:]
    hub.stop()
    # the targets after `--`: --set-threads and --set-resources take every word after them
    rest = snakemake(workdir, *args, *(("--", *targets) if targets else ()), configfile=configfile, env=env,
                     timeout=3600)
    assert rest.returncode == 0, (rest.stdout + rest.stderr)[-8000:]
    return fetch, rest, config


def config_points(workdir: Path, config: dict) -> list[tuple[str, str]]:
    """(model, step) of every checkpoint of the run: a model's list, or the steps its discovery recorded."""
    points = []
    for model, spec in config["models"].items():
        steps = spec["steps"]
        if isinstance(steps, dict):
            recorded = json.loads((workdir / config["results"] / "steps" / f"{model}.json").read_text())["steps"]
            steps = [*recorded, *(["final"] if steps.get("include_final") else [])]
        points += [(model, str(step)) for step in steps]
    return points


def check_flags(workdir: Path, config: dict, alignment: pd.DataFrame) -> None:
    """The served repo's planted fault (localhub.DEFAULT_MODELS) is flagged: bloom-48's step 2000 is
    scrambled; nothing else is flagged."""
    points = alignment.drop_duplicates(["model", "step"]).set_index(["model", "step"])
    flagged = {point: (row["duplicate_of"], row["suspect"]) for point, row in points.iterrows()
               if row["duplicate_of"] or row["suspect"]}
    assert flagged == {("bloom-48", "2000"): ("", True)}, flagged
    log = (workdir / config["results"] / "logs" / "alignment_table.log").read_text()
    loss = points["lm_loss"]["bloom-48"]
    # far above both neighbours, and above a uniform guess over the 500-token vocabulary
    assert loss["2000"] > max(loss["1000"], loss["final"]) + 1.0 and loss["2000"] > math.log(500), loss.to_dict()
    assert re.search(r"WARNING .*bloom-48: step 2000 is suspect: LM loss [\d.]+ nats", log), log[-3000:]


def point_targets(config: dict, model: str, step: str) -> list[str]:
    """The final per-checkpoint results of one checkpoint: every per-checkpoint rule runs for them."""
    results = config["results"]
    return [*(f"{results}/{kind}/{model}/{step}/layer{layer}.tsv" for layer in config["activations"]["layers"]
              for kind in ("overlap", "probe_transfer")),
            *(f"{results}/transfer/{model}/{step}/{task}.tsv" for task in config["transfer"]["tasks"]),
            f"{results}/similarity/{model}/{step}.tsv", f"{results}/lm_loss/{model}/{step}.json"]


def check_point(hub, workdir: Path, config: dict, model: str, step: str) -> None:
    """One checkpoint's results: every transfer target, both similarity pairs, and the served commit and
    weights named by the marker and the LM-loss record."""
    results = workdir / config["results"]
    for task in config["transfer"]["tasks"]:
        table = pd.read_csv(results / "transfer" / model / step / f"{task}.tsv", sep="\t")
        targets = set(table.loc[table["role"] == "target", "language"])
        assert targets == set(config["transfer"]["tasks"][task]["targets"]), (model, step, task)
    similarity = pd.read_csv(results / "similarity" / model / f"{step}.tsv", sep="\t")
    assert {f"{s}-{t}" for s, t in zip(similarity["source"], similarity["target"])} == {"en-ta", "en-vi"}
    # the checkpoint the results name is the served revision's commit
    marker = json.loads((workdir / "resources" / "checkpoints" / model / f"{step}.json").read_text())
    repo, revision = marker["repo"], marker["revision"]
    assert marker["commit"] == hub.git(repo, "rev-parse", revision).decode().strip()
    # the weights' sha256 recorded at prefetch is the served blob's (olah gives no LFS metadata), and the
    # lm_loss record carries it
    blob = hub.git(repo, "show", f"{revision}:model.safetensors")
    assert marker["weights"] == {"model.safetensors": {"sha256": hashlib.sha256(blob).hexdigest(), "from": "file"}}
    check = json.loads((results / "lm_loss" / model / f"{step}.json").read_text())
    # the verdict's loss on the treebanks' languages, the parallel text's beside it
    assert check["weights"] == marker["weights"] and set(check["languages"]) == set(config["treebanks"])
    assert set(check["samples"]["parallel"]["languages"]) == {"en", "ta", "vi"}


def check_results(hub, workdir: Path, config: dict, fetch, rest) -> None:
    fetched, ran = ran_jobs(fetch.stdout + fetch.stderr), ran_jobs(rest.stdout + rest.stderr)
    points = config_points(workdir, config)
    # phase 1 fetched each checkpoint and each dataset config once, and nothing else ran
    assert fetched == {"download_checkpoint": len(points), "prefetch_dataset": 9}, fetched
    # phase 2 fetched nothing: every job ran from the cache, with the server down
    assert not FETCHING & set(ran), ran
    assert ran["transfer"] == len(points) * 2 and ran["similarity"] == len(points), ran
    for model, step in points:
        check_point(hub, workdir, config, model, step)
    assert ran["lm_loss"] == len(points), ran
    results = workdir / config["results"]
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t", dtype={"step": str, "duplicate_of": str})
    alignment["duplicate_of"] = alignment["duplicate_of"].fillna("")
    assert len(alignment) > 0 and set(alignment["model"]) == set(config["models"])
    check_flags(workdir, config, alignment)


def test_dry_run_lists_the_fetching_jobs_as_local_rules(shared_data, tmp_path):
    """Every hub object has its fetching job, and both fetching rules are local rules (the submit host)."""
    configfile, _ = hub_config(tmp_path, shared_data)
    dry = snakemake(tmp_path, "-n", configfile=configfile)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry)
    assert jobs["download_checkpoint"] == 6 and jobs["prefetch_dataset"] == 9, jobs
    # Snakemake 9's dry run does not print which jobs are local ("localrule" appears in real runs
    # only): the workflow's own list says it
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(
            snakefile=REPO / "Snakefile", workdir=tmp_path,
            config_settings=ConfigSettings(configfiles=[configfile]), resource_settings=ResourceSettings(),
        )
        local = set(workflow._workflow._localrules)
    assert FETCHING <= local and not {"transfer", "similarity", "dump_activations"} & local, local


def test_hub_config_runs_with_the_server_stopped_after_prefetch(hub_server, shared_data, tmp_path, capsys):
    if not hub_server.running():
        hub_server.start()
    # bloom-48 alone (CI time: each checkpoint runs every stage), its steps discovered: phase 2 (the server
    # stopped) reads the recorded list. A duplicate step served by the hub is flagged in
    # tests/test_checks_hub.py.
    fetch, rest, config = run_with_the_server_stopped_after_prefetch(hub_server, tmp_path, shared_data,
                                                                     "--cores", "2", models=["bloom-48"],
                                                                     discover=("bloom-48",))
    check_results(hub_server, tmp_path, config, fetch, rest)
    again = rerun_after_a_new_branch(hub_server, tmp_path, fetch, rest)
    with capsys.disabled():
        print(f"\nhub.yaml locally: prefetch {fetch.seconds:.0f} s ({sum(ran_jobs(fetch.stdout + fetch.stderr).values())} "
              f"jobs), rest {rest.seconds:.0f} s ({sum(ran_jobs(rest.stdout + rest.stderr).values())} jobs), "
              f"dry rerun after a new branch {again.seconds:.0f} s ({planned_jobs(again)})", file=sys.stderr)


PER_STEP = ("download_checkpoint", "dump_activations", "probe", "compute_overlap", "probe_transfer", "transfer", "similarity",
            "lm_loss")


def rerun_after_a_new_branch(hub, workdir: Path, fetch, rest):
    """bloom-48 global_step3000 published after the run: the same command (dry) plans that step's jobs, as
    many per rule as each earlier step had, and the aggregates; nothing of the other steps. The branch is
    removed afterwards (the server is shared by the session's tests)."""
    from localhub import DEFAULT_MODELS, add_step, repo_dir, served_tokenizer

    spec = DEFAULT_MODELS[1]
    hub.start()
    add_step(hub.mirrors, spec, served_tokenizer(hub.mirrors), 3000)
    try:
        configfile = workdir / "config.yaml"
        again = snakemake(workdir, "--cores", "2", "-n", configfile=configfile, env=hub.env(cache=workdir))
    finally:
        served = str(repo_dir(hub.mirrors, spec.intermediate_repo))
        for args in (["checkout", "-q", "main"], ["branch", "-D", "global_step3000"]):
            subprocess.run(["git", "-C", served, *args], check=True, capture_output=True)
    assert again.returncode == 0, again.stderr[-3000:]
    ran = ran_jobs(fetch.stdout + fetch.stderr + rest.stdout + rest.stderr)
    per_step = {rule: ran[rule] // ran["download_checkpoint"] for rule in PER_STEP}  # a download per checkpoint
    # a dump per treebank with something to probe (2 of the 3 at 120 sentences), a transfer per task
    assert per_step["dump_activations"] >= 1 and per_step["transfer"] == 2, per_step
    assert planned_jobs(again) == {**per_step, "alignment_table": 1, "correlations": 1, "plot_figures": 1, "all": 1}
    assert {(job["model"], job["step"]) for rule in PER_STEP for job in planned_wildcards(again, rule)} == {
        ("bloom-48", "3000")}
    return again
