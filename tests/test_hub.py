"""Against a real hub server (olah on 127.0.0.1, scripts/hub-server): checkpoints and datasets fetched
once on the "submit host", then read by jobs that have no network and run in offline mode."""

from __future__ import annotations

import json

import pytest
import torch
from hub_server import run_python
from safetensors.torch import load as load_safetensors

from xlprobe.localhub import DEFAULT_MODELS, TOKENIZER_REPO

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
import json, sys
from xlprobe.checkpoints import download
model, cache = json.loads(sys.argv[1]) if len(sys.argv) > 1 else ({model}, {cache!r})
print(json.dumps({{s: download(model, s, {markers!r} + f"/{{s}}.json", cache_dir=cache) for s in {steps}}}))
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
        assert record == {k: v for k, v in fetched.result[step].items() if k not in ("path", "provenance")}
        state = torch.load(weights / f"{step}.pt")
        served = served_weights(local_hub, repo, revision)
        for name, tensor in served.items():
            assert torch.equal(state[name], tensor), (step, name)
    # the tokenizer is the served one: same ids as the tokenizer file in the tokenizer repo
    from tokenizers import Tokenizer

    served_tokenizer = Tokenizer.from_str(local_hub.git(TOKENIZER_REPO, "show", "main:tokenizer.json").decode())
    assert loaded.result["final"]["ids"] == served_tokenizer.encode("Mama, I'm home.").ids


def test_a_revision_never_fetched_names_the_object_and_the_prefetch_rule(local_hub, tmp_path):
    cache = tmp_path / "hf"
    args = {"model": json.dumps(MODEL), "cache": str(cache), "steps": json.dumps(["1000"])}
    fetched = run_python(DOWNLOAD.format(markers=str(tmp_path / "m"), **args), local_hub.env(cache=tmp_path))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    args["steps"] = json.dumps(["2000"])
    loaded = run_python(LOAD.format(weights=str(tmp_path), **args), local_hub.env(offline=True, cache=tmp_path))
    assert loaded.returncode != 0
    message = loaded.stderr.strip().splitlines()[-1]
    assert "CheckpointError" in message, loaded.stderr[-3000:]
    assert f"revision 'global_step2000' of repo '{SPEC.intermediate_repo}'" in message
    assert "download_checkpoint" in message

