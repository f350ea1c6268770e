"""Which files a (model, step) of the config stands for, fetching them once, and loading them.

Three sources (config `models.<name>.source`):
- `hub`: a Hugging Face repo and a revision template, e.g. BLOOM's "global_step{step}" or Pythia's
  "step{step}"; step `final` maps to the `final:` repo/revision (the released model).
- `local`: a directory template, e.g. "ckpt/{step}"; `final` maps to `final: {path: ...}`.
- `demo`: the demo's own checkpoints, `{demo_dir}/models/{model}/{step}`.

Hub checkpoints are fetched once (rule download_checkpoint, on a host with internet) into the cache;
loading looks in the cache first and never touches the network in offline mode (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlprobe.devices import select_device, select_dtype

if TYPE_CHECKING:
    import torch
from xlprobe.io import write_json
from xlprobe.provenance import provenance

log = logging.getLogger(__name__)

# The small files a model or tokenizer needs besides its weights.
_CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken"]
_TOKENIZER_PATTERNS = ["tokenizer*", "special_tokens_map.json", "config.json", "vocab*", "merges*", "*.model"]


class CheckpointError(RuntimeError):
    """A checkpoint that the config names but that cannot be found or loaded."""


@dataclass(frozen=True)
class Checkpoint:
    """A resolved (model, step): a hub repo + revision, or a local directory."""

    model: str
    step: str
    source: str  # hub, local or demo
    location: str  # repo id (hub) or directory (local, demo)
    revision: str | None = None  # hub only
    tokenizer: str | None = None  # repo id or directory; None = the checkpoint's own
    tokenizer_revision: str | None = None

    @property
    def on_hub(self) -> bool:
        return self.source == "hub"

    def describe(self) -> str:
        where = f"{self.location}@{self.revision}" if self.on_hub else self.location
        return f"{self.model} step {self.step} ({where})"

    def record(self, model_dir: Path, tokenizer_dir: Path) -> dict[str, Any]:
        """What a result file records of the weights it came from, once `local_files` found them.

        Hub: repo, revision and the commit it resolved to (a snapshot folder is named by its commit;
        a revision such as `main` moves, the commit does not). Local and demo: the directory.
        The tokenizer likewise, where it comes from elsewhere.
        """
        record: dict[str, Any] = {"model": self.model, "step": self.step, "source": self.source}
        if self.on_hub:
            record.update(repo=self.location, revision=self.revision, commit=Path(model_dir).name)
        else:
            record["path"] = str(model_dir)
        if self.tokenizer is not None:
            if Path(self.tokenizer).is_dir():
                record["tokenizer"] = {"path": str(tokenizer_dir)}
            else:
                record["tokenizer"] = {"repo": self.tokenizer, "revision": self.tokenizer_revision or "main",
                                       "commit": Path(tokenizer_dir).name}
        return record


def resolve_checkpoint(model: dict[str, Any], step: int | str, demo_dir: str | os.PathLike | None = None) -> Checkpoint:
    """Map a model's config (with its `name`) and a step to a Checkpoint. Nothing is fetched."""
    name = model.get("name", "?")
    step = str(step)
    source = model["source"]
    key = f"models.{name}"
    tokenizer = model.get("tokenizer")

    if source == "demo":
        if step == "final":
            raise CheckpointError(f"{key}: demo models have no 'final' step; list a saved step")
        if demo_dir is None:
            raise CheckpointError(f"{key}: a demo model is found under the demo's directory (demo.dir): none given")
        return Checkpoint(name, step, "demo", str(Path(demo_dir, "models", name, step)))

    if step == "final":
        final = model.get("final")
        if not final:
            raise CheckpointError(f"{key}.final: step 'final' needs a final: {{repo, revision}} or {{path}}")
        if source == "hub":
            repo, revision = final.get("repo", model.get("repo")), final.get("revision", "main")
            return Checkpoint(name, step, "hub", repo, revision, tokenizer, None)
        return Checkpoint(name, step, "local", str(final["path"]), tokenizer=tokenizer)

    if source == "hub":
        return Checkpoint(name, step, "hub", model["repo"], hub_branch(model, step), tokenizer, None)
    if source == "local":
        template = str(model["path"])
        if "{step}" not in template:
            raise CheckpointError(f"{key}.path: '{template}' has no {{step}}; every step would be the same")
        return Checkpoint(name, step, "local", template.format(step=step), tokenizer=tokenizer)
    raise CheckpointError(f"{key}.source: unknown source '{source}' (hub, local or demo)")


def hub_branch(model: dict[str, Any], step: str) -> str:
    """The branch of a hub model's step: `branch` where the workflow looked it up in the discovery
    record, else the revision template filled in, else (a `{*}` template) the listed branches searched."""
    from xlprobe.discovery import DiscoveryError, branch_of, hub_revisions

    if model.get("branch"):
        return model["branch"]
    key, template = f"models.{model.get('name', '?')}.revision", model["revision"]
    if "{*}" in template and is_offline():
        raise CheckpointError(f"{key}: '{template}' names its branches only through the hub's list, and the hub "
                              "is offline (the workflow reads them from the discovery record)")
    try:
        revisions = hub_revisions(model["repo"]) if "{*}" in template else None
        return branch_of(template, step, revisions)
    except (ValueError, DiscoveryError) as error:
        raise CheckpointError(f"{key}: {error}") from None


# ----------------------------------------------------------------------------- hub cache
def is_offline(offline: bool | None = None) -> bool:
    """`offline` if given, else the HF_HUB_OFFLINE environment variable (read now, not at import)."""
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


# One weight format per checkpoint, in this order of preference: never both (they are large).
_WEIGHT_PATTERNS = (["*.safetensors"], ["*.bin"])


def _weight_patterns(repo: str, revision: str) -> list[str]:
    """safetensors if the revision has them, else PyTorch .bin files (asks the hub)."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo, revision=revision)
    if any(f.endswith(".safetensors") for f in files):
        return _WEIGHT_PATTERNS[0]
    return _WEIGHT_PATTERNS[1]


def _cached_snapshot(repo: str, revision: str, cache: str | None, patterns: list[str] | None) -> Path:
    """The cached folder of what a download with the same patterns fetched, or LocalEntryNotFoundError.

    The check must ask for exactly the patterns of the download: huggingface_hub records a revision's
    whole file list, and a check without patterns (or with others) fails on every file skipped on purpose
    (IncompleteSnapshotError). `patterns` None: the model files, with either weight format.
    """
    from fnmatch import fnmatch

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if patterns is not None:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True,
                                      allow_patterns=patterns))
    error = None
    for weights in _WEIGHT_PATTERNS:
        try:
            folder = Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True,
                                            allow_patterns=_CONFIG_PATTERNS + weights))
        except LocalEntryNotFoundError as missing:
            error = missing
            continue
        # A revision without this format is "complete" without any weights: try the other one.
        if any(fnmatch(p.name, weights[0]) for p in folder.iterdir()):
            return folder
    raise error or LocalEntryNotFoundError(f"{repo}@{revision}: no weights in the cache")


def hub_snapshot(
    repo: str,
    revision: str,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    patterns: list[str] | None = None,
) -> Path:
    """The local folder of repo@revision: from the cache if there, else downloaded (unless offline).

    `patterns` None means the model files (config, tokenizer, one weight format).
    Without network (offline mode, or the hub unreachable) a revision missing from the cache is a
    CheckpointError naming it and the rule that fetches it.
    """
    from huggingface_hub import errors, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    # A hub that cannot be reached: httpx's errors (huggingface_hub >= 1), OSError (requests, < 1).
    unreachable = (errors.HfHubHTTPError, LocalEntryNotFoundError, OSError, getattr(errors, "HTTPError", OSError))
    cache = str(cache_dir) if cache_dir else None
    what = f"revision '{revision}' of repo '{repo}'"
    if patterns is not None:
        what += f" (files {', '.join(patterns)})"
    prefetch = (
        "run rule download_checkpoint on a host with internet (`snakemake` on the submit host fetches "
        "every checkpoint before any job starts), or check that the revision exists"
    )
    try:
        return _cached_snapshot(repo, revision, cache, patterns)
    except LocalEntryNotFoundError as error:
        if is_offline(offline):
            raise CheckpointError(
                f"{what} is not in the cache ({cache or 'default HF cache'}) and offline mode is on: {prefetch}. "
                f"({error})"
            ) from None
    try:
        if patterns is None:
            patterns = _CONFIG_PATTERNS + _weight_patterns(repo, revision)
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache, allow_patterns=patterns))
    except RevisionNotFoundError:
        raise CheckpointError(f"revision '{revision}' does not exist in repo '{repo}'") from None
    except RepositoryNotFoundError:
        # some hub servers (olah's mirrors) answer an unknown revision of a known repo this way too
        raise CheckpointError(f"repo '{repo}' or its revision '{revision}' not found, or not accessible") from None
    except unreachable as error:
        # the hub unreachable (no network on this host) or failing
        raise CheckpointError(
            f"{what} is not in the cache ({cache or 'default HF cache'}) and the hub cannot be reached "
            f"({type(error).__name__}: {error}): {prefetch}"
        ) from None


def local_files(
    checkpoint: Checkpoint, cache_dir: str | os.PathLike | None = None, offline: bool | None = None
) -> tuple[Path, Path]:
    """Folders holding the checkpoint's model files and its tokenizer files."""
    if checkpoint.on_hub:
        model_dir = hub_snapshot(checkpoint.location, checkpoint.revision, cache_dir, offline)
    else:
        model_dir = Path(checkpoint.location)
        if not (model_dir / "config.json").is_file():
            raise CheckpointError(f"{checkpoint.describe()}: no config.json in directory '{model_dir}'")
    tokenizer = checkpoint.tokenizer
    if tokenizer is None:
        return model_dir, model_dir
    if Path(tokenizer).is_dir():
        return model_dir, Path(tokenizer)
    tokenizer_dir = hub_snapshot(
        tokenizer, checkpoint.tokenizer_revision or "main", cache_dir, offline, patterns=_TOKENIZER_PATTERNS
    )
    return model_dir, tokenizer_dir


def checkpoint_record(
    model: dict[str, Any],
    step: int | str,
    *,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> dict[str, Any]:
    """`Checkpoint.record` of a config model at a step, without loading it: the files `load_checkpoint`
    would load now."""
    checkpoint = resolve_checkpoint(model, step, demo_dir)
    return checkpoint.record(*local_files(checkpoint, cache_dir, offline))


# ----------------------------------------------------------------------------- loading
def load_checkpoint(
    model: dict[str, Any],
    step: int | str,
    *,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = "float32",
    auto_class=None,
    **model_kwargs: Any,
):
    """Load (model, tokenizer, record) of a config model at a step, the model in eval mode on `device`.

    `record` is `Checkpoint.record` of the very files loaded (resolving a revision a second time
    could meet a moved revision). `auto_class` defaults to AutoModelForCausalLM; pass e.g.
    AutoModelForTokenClassification with its `num_labels` in `model_kwargs` for fine-tuning.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = resolve_checkpoint(model, step, demo_dir)
    model_dir, tokenizer_dir = local_files(checkpoint, cache_dir, offline)
    device = device if isinstance(device, torch.device) else select_device(device)
    if not isinstance(dtype, torch.dtype):
        dtype = select_dtype(dtype, device)
    auto_class = auto_class or AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        net = auto_class.from_pretrained(model_dir, dtype=dtype, **model_kwargs)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{checkpoint.describe()}: cannot load from '{model_dir}': {error}") from error
    log.info("loaded %s from %s (%s, %s)", f"{checkpoint.model} step {checkpoint.step}", model_dir, device, dtype)
    return net.to(device).eval(), tokenizer, checkpoint.record(model_dir, tokenizer_dir)


# ----------------------------------------------------------------------------- download rule
def download(
    model: dict[str, Any], step: int | str, marker: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Put a (model, step) into the cache and write the marker JSON (repo, revision, resolved commit).

    The marker also records the sha256 of each weight file (`weights`: file -> {sha256, from}), the
    hub's LFS sha256 where its metadata has one, else the file's (xlprobe.weights): two steps with the
    same weights are found from these records.
    """
    from xlprobe.integrity import folder_records
    from xlprobe.weights import hash_folder, revision_siblings, weight_files

    checkpoint = resolve_checkpoint(model, step)
    model_dir, tokenizer_dir = local_files(checkpoint, cache_dir, offline=None)
    # The cache folder too: where the rule put the files on this host.
    record = {**checkpoint.record(model_dir, tokenizer_dir), "path": str(model_dir)}
    # On the hub, the resolved commit's metadata: that of the very files downloaded.
    siblings = revision_siblings(checkpoint.location, record["commit"]) if checkpoint.on_hub else None
    record["weights"] = hash_folder(model_dir, siblings)
    # Size and fast checksum of the files the dumps load, checked before each load (xlprobe.integrity).
    record["files"] = folder_records(model_dir, [p.name for p in weight_files(model_dir)] + ["config.json"])
    record["provenance"] = provenance(
        {k: v for k, v in model.items() if k != "pretrain"}, checkpoint=asdict(checkpoint), cache_dir=cache_dir
    )
    write_json(marker, record)
    log.info("%s -> %s", checkpoint.describe(), model_dir)
    return record
