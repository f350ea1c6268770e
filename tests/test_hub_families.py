"""A tiny GPT-NeoX with Pythia's branch names and a tiny OLMo-2 with OLMo-2's (a stage-2 branch and one
without the stage prefix among them, which must not match) served by the local hub: steps discovered,
checkpoints fetched from the real branches, then every other job run with the server stopped: dumps at
the mlp site (as wide as each model's intermediate size) and at the residual site, probes, overlap,
transfer (LoRA; OLMo-2's POS head is the generic one), similarity and lm_loss."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from localhub import commit_checkpoint, served_tokenizer
from test_costs import dry_run_and_plan
from test_hub_workflow import FETCHING, ran_jobs, small_ud_root
from tiny_families import HIDDEN, INTERMEDIATE, tiny_causal_lm
from workflow_runs import snakemake

from xlprobe.plan import plan

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# model: (family, repo, revision template, served branches, branches the template must find from step
# MIN_STEP on). One step each runs end to end (CI time); the others are there to be left out: below the
# minimum, of another stage, without the stage prefix.
FAMILIES = {
    "pythia-tiny": ("gpt_neox", "tiny-eleutherai/pythia-tiny", "step{step}",
                    ["step0", "step1", "step2", "step512", "step1000", "step2000"],
                    {"2000": "step2000"}),
    "olmo2-tiny": ("olmo2", "tiny-allenai/olmo2-tiny", "stage1-step{step}-tokens{*}B",
                   ["stage1-step1000-tokens5B", "stage1-step2000-tokens9B", "stage2-ingredient1-step2000-tokens9B",
                    "step3000-tokens13B"],
                   {"2000": "stage1-step2000-tokens9B"}),
}
MIN_STEP = 2000
CLASSIFIERS = {"pythia-tiny": "GPTNeoXForTokenClassification", "olmo2-tiny": "Olmo2ForTokenClassification"}


def serve_families(hub, models=tuple(FAMILIES)) -> None:
    tokenizer = served_tokenizer(hub.mirrors)
    for seed, (name, (family, repo, _, branches, _)) in enumerate(FAMILIES.items()):
        if name not in models:
            continue
        for i, branch in enumerate(branches):
            model = tiny_causal_lm(family, len(tokenizer), seed=100 * seed + i, pad_token_id=tokenizer.pad_token_id)
            commit_checkpoint(hub.mirrors, repo, branch, model, tokenizer)


def families_config(workdir: Path, shared: Path, site: str, results: str) -> tuple[Path, dict]:
    """config/hub.yaml with the two families in place of its BLOOMs, their steps discovered."""
    config = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    config["ud_root"] = str(small_ud_root(shared, workdir / "ud", config))
    config["results"] = results
    config["models"] = {name: {"source": "hub", "repo": repo, "revision": template,
                               "steps": {"discover": True, "min": MIN_STEP}}
                        for name, (_, repo, template, _, _) in FAMILIES.items()}
    config["activations"].update(site=site, layers=[2])
    # POS only: the head differs by family (OLMo-2's is the generic one); XNLI's is the same for all, and
    # tests/test_transfer_families.py fine-tunes every family on both tasks
    config["transfer"]["tasks"] = {"pos": config["transfer"]["tasks"]["pos"]}
    configfile = workdir / f"{site}.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return configfile, config


def per_model(results: Path) -> dict[str, tuple[int, float]]:
    """model -> (jobs, summed job seconds) from the per-job benchmark files."""
    out = {}
    for model in FAMILIES:
        files = [p for p in (results / "benchmarks").rglob("*.tsv") if model in p.relative_to(results).parts]
        out[model] = (len(files), sum(float(pd.read_csv(p, sep="\t")["s"].iloc[0]) for p in files))
    return out


def test_families_run_end_to_end_against_the_local_hub_then_offline(hub_server, shared_data, tmp_path, capsys,
                                                                    monkeypatch):
    if not hub_server.running():
        hub_server.start()
    serve_families(hub_server)
    configfile, config = families_config(tmp_path, shared_data, "mlp", "results/families")
    env = hub_server.env(cache=tmp_path)
    fetch = snakemake(tmp_path, "--cores", "2", "--until", *sorted(FETCHING), configfile=configfile, env=env,
                      timeout=3600)
    assert fetch.returncode == 0, (fetch.stdout + fetch.stderr)[-5000:]
    hub_server.stop()
    # `xlprobe plan`, offline, sizes both families from the config.json files in the cache and counts
    # the jobs of the dry run, rule by rule
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dry, planned = dry_run_and_plan(configfile, tmp_path)
    assert planned == dry and dry["dump_activations"] >= 4, (planned, dry)
    rows = plan(configfile, workdir=tmp_path)
    assert not [row["note"] for row in rows if "no config.json" in row["note"]], rows
    rest = snakemake(tmp_path, "--cores", "2", configfile=configfile, env=env, timeout=3600)
    assert rest.returncode == 0, (rest.stdout + rest.stderr)[-8000:]
    fetched, ran = ran_jobs(fetch.stdout + fetch.stderr), ran_jobs(rest.stdout + rest.stderr)
    assert fetched["download_checkpoint"] == 2 and not FETCHING & set(ran), (fetched, ran)

    results = tmp_path / config["results"]
    for model, (_, repo, _, _, expected) in FAMILIES.items():
        record = json.loads((results / "steps" / f"{model}.json").read_text())
        # none below the minimum, no stage-2 branch, no branch without the stage prefix
        assert record["branches"] == expected
        for step, branch in expected.items():
            marker = json.loads((tmp_path / "resources" / "checkpoints" / model / f"{step}.json").read_text())
            assert marker["revision"] == branch
            assert marker["commit"] == hub_server.git(repo, "rev-parse", branch).decode().strip()
            dumps = sorted((results / "activations" / model / step).glob("*/layer2.npy"))
            assert dumps
            for dump in dumps:
                meta = json.loads((dump.parent / "meta.json").read_text())
                assert meta["site"] == "mlp" and np.load(dump).shape[1] == meta["width"] == INTERMEDIATE
            for task in config["transfer"]["tasks"]:
                table = pd.read_csv(results / "transfer" / model / step / f"{task}.tsv", sep="\t")
                assert set(table.loc[table["role"] == "target", "language"]) == set(
                    config["transfer"]["tasks"][task]["targets"])
            details = json.loads((results / "transfer" / model / step / "pos.json").read_text())
            assert details["classifier"] == CLASSIFIERS[model]
            assert json.loads((results / "lm_loss" / model / f"{step}.json").read_text())["weights"] == marker["weights"]
            assert (results / "overlap" / model / step / "layer2.tsv").is_file()
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t", dtype={"step": str})
    assert set(zip(alignment["model"], alignment["step"])) == {(m, s) for m, f in FAMILIES.items() for s in f[4]}

    # The residual site from the same cache, the server still stopped: a run of its own, reading the
    # step records the first run wrote.
    residual_file, residual = families_config(tmp_path, shared_data, "residual", "results/families-residual")
    shutil.copytree(results / "steps", tmp_path / residual["results"] / "steps")
    # One mlp dump of each model as targets: a dump's treebank is known once build_word_table (a
    # checkpoint) ran.
    mlp_dumps = [min((results / "activations" / model).rglob("layer2.npy")) for model in FAMILIES]
    targets = [str(Path(residual["results"]) / p.relative_to(results)) for p in mlp_dumps]
    again = snakemake(tmp_path, "--cores", "2", *targets, configfile=residual_file, env=env, timeout=3600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    widths = Counter(np.load(tmp_path / target).shape[1] for target in targets)
    assert widths == {HIDDEN: len(mlp_dumps)}
    with capsys.disabled():
        costs = per_model(results)
        print(f"\nfamilies via the local hub: prefetch {fetch.seconds:.0f} s ({sum(fetched.values())} jobs), rest "
              f"{rest.seconds:.0f} s ({sum(ran.values())} jobs: {dict(ran)}), residual dumps {again.seconds:.0f} s; "
              + "; ".join(f"{m}: {n} jobs, {s:.0f} job-s" for m, (n, s) in costs.items()), file=sys.stderr)
