"""config/hub.yaml end to end against the local hub server: the prefetch jobs fetch every hub object,
the server is stopped, and the rest of the run completes on the cache alone, locally and through the
single-node SLURM cluster (tests/test_slurm.py: XLPROBE_SLURM=1 starts one)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runs import planned_jobs, planned_wildcards, snakemake

from xlprobe.wordtable import conllu_files

REPO = Path(__file__).resolve().parents[1]
FETCHING = {"download_checkpoint", "prefetch_dataset"}
pytestmark = pytest.mark.slow


def small_ud_root(shared: Path, root: Path, config: dict, sentences: int = 120) -> Path:
    """The configured treebanks' real files, each cut to its first `sentences` sentences (CI time)."""
    for spec in config["treebanks"].values():
        for path in conllu_files([shared / "ud-2.1" / spec["folder"]]):
            blocks = Path(path).read_text(encoding="utf-8").split("\n\n")[:sentences]
            out = root / spec["folder"] / Path(path).name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return root


def hub_config(workdir: Path, shared: Path, models: list[str] | None = None) -> tuple[Path, dict]:
    config = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    config["ud_root"] = str(small_ud_root(shared, workdir / "ud", config))
    if models:
        config["models"] = {name: config["models"][name] for name in models}
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return configfile, config


def ran_jobs(log: str) -> dict[str, int]:
    """Rule -> jobs run, from a run's log ("rule x:" or "localrule x:" headers)."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$", log, flags=re.MULTILINE):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def run_with_the_server_stopped_after_prefetch(hub, workdir: Path, shared: Path, *args: str, models=None):
    """Phase 1: the fetching rules only, the server up. Phase 2: the server stopped, everything else.
    Neither sets offline mode itself: the workflow does. Returns (phase 1, phase 2, config)."""
    configfile, config = hub_config(workdir, shared, models)
    env = hub.env(cache=workdir)  # HF_ENDPOINT at the server, no offline switches
    fetch = snakemake(workdir, *args, "--until", *sorted(FETCHING), configfile=configfile, env=env, timeout=3600)
    assert fetch.returncode == 0, (fetch.stdout + fetch.stderr)[-5000:]
    hub.stop()
    rest = snakemake(workdir, *args, configfile=configfile, env=env, timeout=3600)
    assert rest.returncode == 0, (rest.stdout + rest.stderr)[-8000:]
    return fetch, rest, config


def check_results(hub, workdir: Path, config: dict, fetch, rest) -> None:
    fetched, ran = ran_jobs(fetch.stdout + fetch.stderr), ran_jobs(rest.stdout + rest.stderr)
    points = [(m, str(s)) for m, spec in config["models"].items() for s in spec["steps"]]
    # phase 1 fetched each checkpoint and each dataset config once, and nothing else ran
    assert fetched == {"download_checkpoint": len(points), "prefetch_dataset": 9}, fetched
    # phase 2 fetched nothing: every job ran from the cache, with the server down
    assert not FETCHING & set(ran), ran
    assert ran["transfer"] == len(points) * 2 and ran["similarity"] == len(points), ran
    results = workdir / config["results"]
    for model, step in points:
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
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t")
    assert len(alignment) > 0 and set(alignment["model"]) == set(config["models"])


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
    fetch, rest, config = run_with_the_server_stopped_after_prefetch(hub_server, tmp_path, shared_data,
                                                                     "--cores", "2")
    check_results(hub_server, tmp_path, config, fetch, rest)
    with capsys.disabled():
        print(f"\nhub.yaml locally: prefetch {fetch.seconds:.0f} s ({sum(ran_jobs(fetch.stdout + fetch.stderr).values())} "
              f"jobs), rest {rest.seconds:.0f} s ({sum(ran_jobs(rest.stdout + rest.stderr).values())} jobs)",
              file=sys.stderr)


@pytest.mark.slurm
def test_hub_config_through_slurm_with_the_server_stopped_after_prefetch(
    slurm_cluster, hub_server, shared_data, tmp_path, capsys
):
    if not hub_server.running():
        hub_server.start()
    # hub.yaml's rules ask for a real model's memory (16 GB for transfer) and 2 cores; the test node has
    # less memory and 2 cores: one core each lets two jobs run at once
    rules = ("dump_activations", "probe", "transfer", "similarity")
    profile = ("--profile", str(REPO / "slurm"), "--set-resources", *[f"{rule}:mem_mb=2000" for rule in rules],
               "--set-threads", *[f"{rule}=1" for rule in rules])
    # one of the two models, as the demo's SLURM test: every rule, half the jobs (about 1 min each here)
    fetch, rest, config = run_with_the_server_stopped_after_prefetch(hub_server, tmp_path, shared_data, *profile,
                                                                     models=["bloom-32"])
    check_results(hub_server, tmp_path, config, fetch, rest)
    fetch_log, rest_log = fetch.stdout + fetch.stderr, rest.stdout + rest.stderr
    # the fetching jobs ran on the submit host, every other job went to SLURM
    assert not re.search(r"submitted with SLURM jobid", fetch_log), fetch_log[-3000:]
    submitted = len(set(re.findall(r"submitted with SLURM jobid (\d+)", rest_log)))
    ran = ran_jobs(rest_log)
    assert submitted == sum(n for rule, n in ran.items() if rule != "all"), (submitted, ran)
    with capsys.disabled():
        print(f"\nhub.yaml through SLURM: prefetch {fetch.seconds:.0f} s (local rules), rest {rest.seconds:.0f} s "
              f"({submitted} SLURM jobs)", file=sys.stderr)


def test_duplicate_and_broken_checkpoints_are_flagged_and_a_new_branch_adds_only_its_jobs(
    local_hub, shared_data, tmp_path, capsys
):
    """A served model whose steps are discovered: step 2000 republishes step 1000's weights, step 3000 is
    a trained checkpoint with its weights scrambled. One treebank, no transfer: the checks' jobs and
    little else. Then a branch published after the run: the same command plans only its jobs."""
    from xlprobe.demo.pretrain import pretrain
    from xlprobe.localhub import (
        TOKENIZER_REPO,
        TinyBloom,
        add_step,
        scramble,
        served_tokenizer,
        tokenizer_text,
    )

    # trained checkpoints: a BLOOM of the demo's kind pre-trained on the served text, 100 and 300 steps
    tokenizer = served_tokenizer(local_hub.mirrors)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(tokenizer_text(shared_data)) + "\n", encoding="utf-8")
    trained = tmp_path / "trained"
    pretrain(tmp_path / "tokenizer", [text], trained, hidden_size=16, n_layer=2, n_head=2, train_steps=300,
             save_steps=[100, 300], batch_size=8, seq_len=32, lr=5e-3)
    spec = TinyBloom("bloom-checks", steps=())  # a repo of its own: the others stay as built
    add_step(local_hub.mirrors, spec, tokenizer, 1000, trained / "100")
    add_step(local_hub.mirrors, spec, tokenizer, 2000, trained / "100")  # the same weights, another commit
    add_step(local_hub.mirrors, spec, tokenizer, 3000, scramble(trained / "300", tmp_path / "scrambled"))

    config = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    config["treebanks"] = {"vi": config["treebanks"]["vi"]}
    config["ud_root"] = str(small_ud_root(shared_data, tmp_path / "ud", config, sentences=80))
    config["models"] = {"chk": {"source": "hub", "repo": spec.intermediate_repo, "revision": "global_step{step}",
                                "tokenizer": TOKENIZER_REPO, "steps": {"discover": True}}}
    del config["transfer"]
    tatoeba = shared_data / "parallel" / "tatoeba" / "tatoeba.vie-eng"
    config["similarity"] = {"pairs": [["en", "vi"]], "max_pairs": 30,
                            "files": {"en-vi": [f"{tatoeba}.eng", f"{tatoeba}.vie"]}}
    config["checks"] = {"lm_loss_sentences": 30}
    config["probe"]["max_epochs"] = 5  # CI time: the probes are not what this test checks
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    env = local_hub.env(cache=tmp_path)

    run = snakemake(tmp_path, "--cores", "2", configfile=configfile, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    ran = ran_jobs(run.stdout + run.stderr)
    assert ran["lm_loss"] == 3 and ran["download_checkpoint"] == 3, ran
    results = tmp_path / config["results"]

    # the weight hashes recorded at prefetch are the served blobs' sha256 (olah: no LFS metadata)
    hashes = {}
    for step in (1000, 2000, 3000):
        marker = json.loads((tmp_path / "resources" / "checkpoints" / "chk" / f"{step}.json").read_text())
        blob = local_hub.git(spec.intermediate_repo, "show", f"global_step{step}:model.safetensors")
        assert marker["weights"] == {"model.safetensors": {"sha256": hashlib.sha256(blob).hexdigest(), "from": "file"}}
        hashes[step] = marker["weights"]["model.safetensors"]["sha256"]
        record = json.loads((results / "lm_loss" / "chk" / f"{step}.json").read_text())
        assert record["weights"] == marker["weights"]
        assert {lang: entry["sentences"] for lang, entry in record["languages"].items()} == {"en": 30, "vi": 30}
    assert hashes[1000] == hashes[2000] != hashes[3000]

    table = pd.read_csv(results / "alignment.tsv", sep="\t", dtype={"duplicate_of": str}).set_index("step")
    assert table.index.tolist() == [1000, 2000, 3000]
    assert table["duplicate_of"].fillna("").tolist() == ["", "1000", ""]
    assert table["suspect"].tolist() == [False, False, True]
    losses = table["lm_loss"]
    assert losses[1000] == losses[2000]  # the same weights, the same sentences: the same loss
    # the scrambled weights: far above the trained neighbour, and above a uniform guess over the vocabulary
    assert losses[3000] > losses[2000] + 1.0 and losses[3000] > math.log(len(tokenizer)), losses.to_dict()
    log = (results / "logs" / "alignment_table.log").read_text()
    assert "chk: step 2000 holds the same weights as step 1000" in log
    assert re.search(r"WARNING .*chk: step 3000 is suspect: LM loss [\d.]+ nats", log), log[-2000:]
    assert (results / "figures" / "overlap_vs_lm_loss.png").stat().st_size > 0

    # a branch published after the run: the same command plans that step's jobs and the aggregates only
    add_step(local_hub.mirrors, spec, tokenizer, 4000, trained / "300")
    again = snakemake(tmp_path, "--cores", "2", "-n", configfile=configfile, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    per_step = {rule: 1 for rule in ("download_checkpoint", "dump_activations", "probe", "compute_overlap",
                                     "similarity", "lm_loss")}
    assert planned_jobs(again) == {**per_step, "alignment_table": 1, "correlations": 1, "plot_figures": 1, "all": 1}
    assert {job["step"] for rule in per_step for job in planned_wildcards(again, rule)} == {"4000"}
    with capsys.disabled():
        print(f"\nchecks on the local hub: run {run.seconds:.0f} s ({sum(ran.values())} jobs), "
              f"dry rerun {again.seconds:.0f} s ({sum(planned_jobs(again).values())} jobs planned)", file=sys.stderr)
