"""Against a real hub server (olah on 127.0.0.1, scripts/hub-server): checkpoints and datasets fetched
once on the "submit host", then read by jobs that have no network and run in offline mode."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import xxhash
from hub_server import run_python
from localhub import DEFAULT_MODELS, TOKENIZER_REPO
from safetensors.torch import load as load_safetensors

SPEC = DEFAULT_MODELS[0]
MODEL = {
    "name": SPEC.name, "source": "hub", "repo": SPEC.intermediate_repo, "revision": "global_step{step}",
    "final": {"repo": SPEC.final_repo, "revision": "main"}, "tokenizer": TOKENIZER_REPO,
}
STEPS = [*[str(step) for step in SPEC.steps], "final"]


def served_weights(hub, repo: str, revision: str) -> dict[str, torch.Tensor]:
    return load_safetensors(hub.git(repo, "show", f"{revision}:model.safetensors"))


# ----------------------------------------------------------------------------- checkpoints
DOWNLOAD = """
import json
from xlprobe.hubdata import go_online
go_online()
from xlprobe.checkpoints import download
print(json.dumps({{s: download({model}, s, {markers!r} + f"/{{s}}.json", cache_dir={cache!r}) for s in {steps}}}))
"""

LOAD = """
import json, torch
from xlprobe.checkpoints import load_checkpoint
out = {{}}
for step in {steps}:
    model, tokenizer, record = load_checkpoint({model}, step, cache_dir={cache!r})
    torch.save(model.state_dict(), {weights!r} + f"/{{step}}.pt")
    out[step] = {{"record": record, "ids": tokenizer("Mama, I'm home.")["input_ids"]}}
print(json.dumps(out))
"""


@pytest.mark.parametrize("offline_mode", [True, False], ids=["offline-mode", "no-offline-mode"])
def test_checkpoints_fetched_once_load_on_a_host_without_network(local_hub, tmp_path, offline_mode):
    """The download rule's fetch (filtered: config, tokenizer, one weight format) on the submit host; then a
    job with no route to the hub loads every step from the cache alone, in offline mode (as the workflow
    runs its jobs) or not (a library user who forgot it)."""
    cache, weights = tmp_path / "hf", tmp_path / "weights"
    weights.mkdir()
    args = {"model": json.dumps(MODEL), "cache": str(cache), "steps": json.dumps(STEPS)}
    fetched = run_python(DOWNLOAD.format(markers=str(tmp_path / "markers"), **args), local_hub.env(cache=tmp_path))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    # the files of one weight format only: the final repo has both, and a model card
    final_dir = cache / f"models--{SPEC.final_repo.replace('/', '--')}" / "snapshots"
    names = {p.name for p in final_dir.glob("*/*")}
    assert "model.safetensors" in names and "pytorch_model.bin" not in names and "README.md" not in names

    env = local_hub.env(offline=True, cache=tmp_path)
    if not offline_mode:
        del env["HF_HUB_OFFLINE"], env["HF_DATASETS_OFFLINE"]
    loaded = run_python(LOAD.format(weights=str(weights), **args), env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    for step in STEPS:
        repo, revision = (SPEC.final_repo, "main") if step == "final" else (SPEC.intermediate_repo, f"global_step{step}")
        record = loaded.result[step]["record"]
        assert record["commit"] == local_hub.git(repo, "rev-parse", revision).decode().strip()
        # the files it loaded are the ones the download rule fetched
        assert record == {k: v for k, v in fetched.result[step].items()
                          if k not in ("path", "provenance", "weights", "files")}
        state = torch.load(weights / f"{step}.pt")
        served = served_weights(local_hub, repo, revision)
        # the weights' sha256 recorded at download is that of the served blob (olah gives no LFS metadata)
        blob = local_hub.git(repo, "show", f"{revision}:model.safetensors")
        assert fetched.result[step]["weights"] == {
            "model.safetensors": {"sha256": hashlib.sha256(blob).hexdigest(), "from": "file"}}
        # the size and checksum the marker records for `xlprobe verify` are the served blob's
        assert fetched.result[step]["files"]["model.safetensors"] == {
            "size": len(blob), "xxh3_128": xxhash.xxh3_128_hexdigest(blob)}
        for name, tensor in served.items():
            assert torch.equal(state[name], tensor), (step, name)
    # the tokenizer is the served one: same ids as the tokenizer file in the tokenizer repo
    from tokenizers import Tokenizer

    served_tokenizer = Tokenizer.from_str(local_hub.git(TOKENIZER_REPO, "show", "main:tokenizer.json").decode())
    assert loaded.result["final"]["ids"] == served_tokenizer.encode("Mama, I'm home.").ids


def test_a_revision_never_fetched_names_the_object_and_the_prefetch_rule(local_hub, tmp_path):
    cache = tmp_path / "hf"
    args = {"model": json.dumps(MODEL), "cache": str(cache), "steps": json.dumps(["1000", "999"])}
    fetched = run_python(DOWNLOAD.format(markers=str(tmp_path / "m"), **args), local_hub.env(cache=tmp_path))
    # a revision the server does not have: named, not reported as a network failure (olah answers 401,
    # repo not found, where huggingface.co answers 404, revision not found)
    last = fetched.stderr.strip().splitlines()[-1]
    assert last.startswith("xlprobe.checkpoints.CheckpointError") and "'global_step999'" in last, fetched.stderr[-3000:]
    assert SPEC.intermediate_repo in last and "cannot be reached" not in last
    assert (tmp_path / "m" / "1000.json").is_file()
    args["steps"] = json.dumps(["2000"])
    loaded = run_python(LOAD.format(weights=str(tmp_path), **args), local_hub.env(offline=True, cache=tmp_path))
    assert loaded.returncode != 0
    message = loaded.stderr.strip().splitlines()[-1]
    assert "CheckpointError" in message, loaded.stderr[-3000:]
    assert f"revision 'global_step2000' of repo '{SPEC.intermediate_repo}'" in message
    assert "download_checkpoint" in message



# ----------------------------------------------------------------------------- datasets
PREFETCH = """
import json
from xlprobe.hubdata import go_online
go_online()
from xlprobe.hubdata import prefetch
print(json.dumps([prefetch(repo, config, splits, {markers!r} + f"/{{config}}.json", {cache!r})["splits"]
                  for repo, config, splits in {wanted}]))
"""

READ = """
import json
from xlprobe.transfer.data import _read_hub, load_task
from xlprobe.similarity import hub_parallel, parallel_sentences
from xlprobe.hubdata import HubDataError
cache = {cache!r}
out = {{
    "xnli": {{split: _read_hub("xnli", lang, split, cache) for lang, split in [("en", "train"), ("en", "validation"), ("fr", "test")]}},
    "udpos": {{split: _read_hub("udpos", lang, split, cache) for lang, split in [("en", "train"), ("en", "validation"), ("ta", "test")]}},
    "opus": hub_parallel("Helsinki-NLP/opus-100", "en", "ta", 20, cache),
    "pairs": parallel_sentences({{}}, "en", "ta", max_pairs=5, hub="Helsinki-NLP/opus-100", cache_dir=cache),
}}
for kind, target in (("xnli", "fr"), ("udpos", "ta")):
    task = load_task({{"type": kind, "format": "hub", "source": "en", "targets": [target], "eval_split": "test"}}, cache_dir=cache)
    out[kind + "_task"] = [len(task.train), len(task.source_dev), len(task.targets[target])]
try:
    _read_hub("xnli", "vi", "test", cache)
except HubDataError as error:
    out["missing"] = str(error)
print(json.dumps(out))
"""


def test_hub_datasets_prefetched_once_are_read_on_a_host_without_network(local_hub, tmp_path, shared_data):
    """Every task type's reader (_read_hub: XNLI, XTREME UD-POS; hub_parallel: OPUS-100) in a job with no
    network and offline mode, after rule prefetch_dataset's fetch; the rows are the shared data's."""
    from xlprobe.transfer.data import read_xnli_tsv, read_xtreme_pos

    cache = str(tmp_path / "hf")
    wanted = [("facebook/xnli", "en", ["train", "validation"]), ("facebook/xnli", "fr", ["test"]),
              ("google/xtreme", "udpos.English", ["train", "validation"]), ("google/xtreme", "udpos.Tamil", ["test"]),
              ("Helsinki-NLP/opus-100", "en-ta", ["train"])]
    fetched = run_python(PREFETCH.format(markers=str(tmp_path / "markers"), cache=cache, wanted=wanted),
                         local_hub.env(cache=tmp_path))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    marker = json.loads((tmp_path / "markers" / "udpos.Tamil.json").read_text())
    assert marker["repo"] == "google/xtreme" and marker["commit"] == local_hub.git(
        "google/xtreme", "rev-parse", "main", kind="dataset").decode().strip()
    assert "ClassLabel(names=['ADJ'" in marker["features"]["pos_tags"]

    read = run_python(READ.format(cache=cache), local_hub.env(offline=True, cache=tmp_path))
    assert read.returncode == 0, read.stderr[-3000:]
    out = read.result
    sizes = {config: splits for (_, config, _), splits in zip(wanted, fetched.result)}
    # XNLI: label names through the ClassLabel; every row one of the language's dev file, splits disjoint
    for split, lang in (("train", "en"), ("validation", "en"), ("test", "fr")):
        rows = {tuple(r) for r in out["xnli"][split]}
        assert len(out["xnli"][split]) == sizes[lang][split] > 0
        assert rows <= set(read_xnli_tsv(shared_data / "xnli-dev" / f"dev-{lang}.tsv")), split
    assert not {tuple(r) for r in out["xnli"]["train"]} & {tuple(r) for r in out["xnli"]["validation"]}
    # UD-POS: tokens with UPOS names, each sentence one of the XTREME file's
    for split, source in (("train", "train-en"), ("validation", "dev-en"), ("test", "dev-ta")):
        expected = {(tuple(w), tuple(t)) for w, t in read_xtreme_pos(shared_data / "udpos" / f"{source}.tsv")}
        got = [(tuple(w), tuple(t)) for w, t in out["udpos"][split]]
        assert got and set(got) <= expected, split
    # OPUS-100 en-ta: aligned (English, Tamil) lines of the Tatoeba pair it was filled from
    tatoeba = shared_data / "parallel" / "tatoeba"
    pairs = set(zip((tatoeba / "tatoeba.tam-eng.eng").read_text().splitlines(),
                    (tatoeba / "tatoeba.tam-eng.tam").read_text().splitlines()))
    english, tamil = out["opus"]
    assert len(english) == 20 and set(zip(english, tamil)) <= pairs
    assert out["pairs"] == [english[:5], tamil[:5]]
    # load_task on both task types: source train/validation, target test, as the transfer rule reads them
    assert out["xnli_task"] == [sizes["en"]["train"], sizes["en"]["validation"], sizes["fr"]["test"]]
    assert out["udpos_task"] == [sizes["udpos.English"]["train"], sizes["udpos.English"]["validation"],
                                 sizes["udpos.Tamil"]["test"]]
    # a config never fetched: named, with the rule that fetches it
    assert "dataset 'facebook/xnli' config 'vi' split 'test' is not in the cache" in out["missing"]
    assert "prefetch_dataset (resources/datasets/facebook--xnli/vi.json)" in out["missing"]
