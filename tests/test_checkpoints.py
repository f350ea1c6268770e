import hashlib
import json
from pathlib import Path

import huggingface_hub
import pytest
import torch
import xxhash
import yaml
from huggingface_hub.errors import RevisionNotFoundError

from xlprobe import checkpoints
from xlprobe.checkpoints import (
    CheckpointError,
    checkpoint_record,
    download,
    load_checkpoint,
    resolve_checkpoint,
    select_device,
    select_dtype,
)
from xlprobe.integrity import check_checkpoint

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKENIZER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def config_models(repo, name):
    config = yaml.safe_load((repo / name).read_text())
    return {model: {"name": model, **spec} for model, spec in config["models"].items()}


# ----------------------------------------------------------------------------- resolution
def test_paper_config_resolves_every_bloom_step(repo):
    models = config_models(repo, "config.yaml")
    ckpt = resolve_checkpoint(models["bloom-560m"], 1000)
    assert (ckpt.source, ckpt.location, ckpt.revision) == ("hub", "bigscience/bloom-560m-intermediate", "global_step1000")
    assert ckpt.tokenizer == "bigscience/bloom"
    final = resolve_checkpoint(models["bloom-1b7"], "final")
    assert (final.location, final.revision) == ("bigscience/bloom-1b7", "main")
    for model in models.values():
        for step in model["steps"]:
            resolved = resolve_checkpoint(model, step)
            expected = "main" if str(step) == "final" else f"global_step{step}"
            assert resolved.revision == expected


def test_pythia_example_resolves(repo):
    model = config_models(repo, "config/pythia.yaml")["pythia-160m"]
    for step in (0, 512, 10000, 143000):  # branches of the Pythia suite (its steps are discovered)
        ckpt = resolve_checkpoint(model, step)
        assert (ckpt.location, ckpt.revision) == ("EleutherAI/pythia-160m", f"step{step}")
    assert resolve_checkpoint(model, "final").revision == "main"


def test_local_and_demo_resolution():
    local = {"name": "mine", "source": "local", "path": "ckpt/{step}", "final": {"path": "ckpt/last"}, "steps": [5]}
    assert resolve_checkpoint(local, 5).location == "ckpt/5"
    assert resolve_checkpoint(local, "final").location == "ckpt/last"
    demo = {"name": "demo-64", "source": "demo", "steps": [0]}
    assert resolve_checkpoint(demo, 50, demo_dir="somewhere").location == str(Path("somewhere/models/demo-64/50"))


def test_resolution_errors_name_the_key():
    with pytest.raises(CheckpointError, match="demo models have no 'final'"):
        resolve_checkpoint({"name": "d", "source": "demo", "steps": [0]}, "final")
    with pytest.raises(CheckpointError, match=r"models\.b\.revision: 'main' has no \{step\}"):
        resolve_checkpoint({"name": "b", "source": "hub", "repo": "x/y", "revision": "main"}, 10)
    with pytest.raises(CheckpointError, match=r"models\.b\.final"):
        resolve_checkpoint({"name": "b", "source": "hub", "repo": "x/y", "revision": "s{step}"}, "final")


def test_device_and_dtype_selection():
    assert select_dtype("auto", torch.device("cpu")) == torch.float32
    assert select_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    if not torch.cuda.is_available():
        assert select_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="activations.dtype: 'half'"):
        select_dtype("half", torch.device("cpu"))


# ----------------------------------------------------------------------------- a fake hub cache
@pytest.fixture(scope="module")
def tiny(tiny_bloom):
    """The shared tiny model: its directory (`model/` with the tokenizer, `tokenizer/` alone) and weights."""
    return tiny_bloom.root, tiny_bloom.model


def put_in_cache(cache, repo_id, revision, commit, source_dir):
    """Lay files out as huggingface_hub's cache does: refs/<revision> -> snapshots/<commit>/."""
    repo_dir = Path(cache, "models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in Path(source_dir).iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    return snapshot


@pytest.fixture
def cache(tmp_path, tiny):
    root, _ = tiny
    put_in_cache(tmp_path / "hf", "org/tiny-intermediate", "global_step7", COMMIT, root / "model")
    put_in_cache(tmp_path / "hf", "org/tok", "main", TOKENIZER_COMMIT, root / "tokenizer")
    return tmp_path / "hf"


HUB_MODEL = {"name": "tiny", "source": "hub", "repo": "org/tiny-intermediate", "revision": "global_step{step}",
             "tokenizer": "org/tok", "steps": [7]}


def test_loads_from_the_cache_offline(cache, tiny, monkeypatch):
    _, reference = tiny
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer, record = load_checkpoint(HUB_MODEL, 7, cache_dir=cache)
    assert record == checkpoint_record(HUB_MODEL, 7, cache_dir=cache)  # the files it loaded
    assert not model.training
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert tokenizer("kata dora")["input_ids"]


def test_missing_revision_offline_names_repo_and_revision(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="revision 'global_step999' of repo 'org/tiny-intermediate'"):
        load_checkpoint(HUB_MODEL, 999, cache_dir=cache)


def test_missing_revision_online_names_repo_and_revision(cache, monkeypatch):
    """The hub answering 'revision not found' (mocked: tests never use the network)."""
    calls = []

    def fake_snapshot_download(repo_id, *, revision, local_files_only=False, **kwargs):
        calls.append((repo_id, revision, local_files_only))
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        raise RevisionNotFoundError.__new__(RevisionNotFoundError)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(checkpoints, "_weight_patterns", lambda repo, revision: ["*.safetensors"])
    with pytest.raises(CheckpointError, match="revision 'global_step999' does not exist in repo 'org/tiny-intermediate'"):
        load_checkpoint(HUB_MODEL, 999, cache_dir=cache)
    # the cache first (once per weight format it may hold), then one download
    assert calls[-1] == ("org/tiny-intermediate", "global_step999", False)
    assert calls[:-1] and set(calls[:-1]) == {("org/tiny-intermediate", "global_step999", True)}


def test_download_writes_marker_with_resolved_commit(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # in the cache already; and no hub metadata to ask
    marker = tmp_path / "resources" / "checkpoints" / "tiny" / "7.json"
    record = download(HUB_MODEL, 7, marker, cache_dir=cache)
    on_disk = json.loads(marker.read_text())
    # the weight files' sha256, hashed from the files (no metadata offline), as hashlib has them
    weights = sorted(Path(on_disk["path"]).glob("*.safetensors"))
    assert weights and on_disk["weights"] == {
        p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "from": "file"} for p in weights}
    # size and xxh3_128 of the files a dump loads, which it checks before loading them
    folder = Path(on_disk["path"])
    assert on_disk["files"] == {
        p.name: {"size": p.stat().st_size, "xxh3_128": xxhash.xxh3_128_hexdigest(p.read_bytes())}
        for p in [*weights, folder / "config.json"]}
    check_checkpoint(marker)
    assert on_disk["repo"] == "org/tiny-intermediate"
    assert on_disk["revision"] == "global_step7"
    assert on_disk["commit"] == COMMIT
    assert on_disk["tokenizer"]["commit"] == TOKENIZER_COMMIT
    assert "provenance" in on_disk and on_disk["provenance"]["libraries"]["torch"]
    assert record["commit"] == COMMIT


def test_hub_checkpoint_record_names_repo_revision_and_commit(cache, tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert checkpoint_record(HUB_MODEL, 7, cache_dir=cache) == {
        "model": "tiny", "step": "7", "source": "hub",
        "repo": "org/tiny-intermediate", "revision": "global_step7", "commit": COMMIT,
        "tokenizer": {"repo": "org/tok", "revision": "main", "commit": TOKENIZER_COMMIT},
    }
    # The commit is the snapshot the revision resolves to now, not a constant.
    other = "89abcdef" * 5
    put_in_cache(cache, "org/tiny-intermediate", "global_step8", other, root / "model")
    assert checkpoint_record(HUB_MODEL, 8, cache_dir=cache)["commit"] == other


def test_local_and_demo_checkpoint_records_name_the_directory(tiny, tmp_path):
    root, _ = tiny
    local = {"name": "tiny", "source": "local", "path": str(root / "{step}"), "tokenizer": str(root / "tokenizer")}
    assert checkpoint_record(local, "model") == {
        "model": "tiny", "step": "model", "source": "local", "path": str(root / "model"),
        "tokenizer": {"path": str(root / "tokenizer")},
    }
    with pytest.raises(CheckpointError, match="no config.json"):
        checkpoint_record(local, "missing")
    demo_dir = tmp_path / "demo"
    (demo_dir / "models" / "tiny" / "3").mkdir(parents=True)
    (demo_dir / "models" / "tiny" / "3" / "config.json").write_text("{}")
    record = checkpoint_record({"name": "tiny", "source": "demo"}, 3, demo_dir=demo_dir)
    assert record == {"model": "tiny", "step": "3", "source": "demo", "path": str(demo_dir / "models" / "tiny" / "3")}


def test_local_and_demo_checkpoints_load(tiny, tmp_path):
    root, reference = tiny
    local = {"name": "tiny", "source": "local", "path": str(root / "{step}"), "steps": ["model"]}
    model, _, record = load_checkpoint(local, "model")
    assert record["path"] == str(root / "model")
    assert torch.equal(model.state_dict()["lm_head.weight"], reference.state_dict()["lm_head.weight"])
    with pytest.raises(CheckpointError, match="no config.json in directory"):
        load_checkpoint(local, "missing")
    demo_dir = tmp_path / "demo"
    put_dir = demo_dir / "models" / "tiny" / "0"
    put_dir.mkdir(parents=True)
    for file in (root / "model").iterdir():
        (put_dir / file.name).write_bytes(file.read_bytes())
    model, tokenizer, _ = load_checkpoint({"name": "tiny", "source": "demo", "steps": [0]}, 0, demo_dir=demo_dir)
    assert model.config.hidden_size == reference.config.hidden_size and len(tokenizer) == model.config.vocab_size
