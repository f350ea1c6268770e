"""A model's shape (hidden size, blocks, MLP width, parameters) from its own config.json.

Where config.json is read, in this order: a local model's folder; the Hugging Face cache (any of the
model's configured revisions); the hub, when online (huggingface_hub downloads config.json alone, a
few kB, into the cache the workflow uses). A demo model's config is its `pretrain:` spec, the same
numbers xlprobe.demo.pretrain builds its BloomConfig from.

The parameter count is an estimate from the config (embeddings, attention and MLP matrices; biases and
norms left out, under 1% of any real model): it prices jobs, it is not a model card. This module
imports neither torch nor transformers: the workflow asks it for every job it schedules.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Model types whose MLP is gated (act(gate) * up, then down): three matrices instead of two.
GATED_MLP = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "olmo", "olmo2", "gemma", "gemma2", "phi3", "cohere"}
# config.json's name for each quantity, across the families transformers ships.
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
BLOCK_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
MLP_KEYS = ("intermediate_size", "n_inner", "ffn_dim")


class ShapeUnknown(LookupError):
    """No config.json reachable for a model: offline and not in the cache, or not on the hub."""


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    blocks: int
    mlp_width: int
    parameters: int


def shape_of(model_config: Mapping[str, Any]) -> ModelShape:
    """The shape a config.json describes."""
    hidden = _first(model_config, HIDDEN_KEYS)
    blocks = _first(model_config, BLOCK_KEYS)
    # BLOOM and GPT-2 write no MLP width (n_inner null): theirs is 4 x hidden.
    mlp = next((int(model_config[k]) for k in MLP_KEYS if model_config.get(k)), 4 * hidden)
    heads = int(model_config.get("num_attention_heads") or model_config.get("n_head") or 1)
    kv_heads = int(model_config.get("num_key_value_heads") or heads)
    attention = 2 * hidden * hidden + 2 * hidden * (hidden // heads) * kv_heads  # q, o; k, v (grouped)
    matrices = 3 if model_config.get("model_type") in GATED_MLP else 2
    vocab = int(model_config.get("vocab_size") or 0)
    embeddings = vocab * hidden * (1 if model_config.get("tie_word_embeddings", True) else 2)
    return ModelShape(hidden, blocks, mlp, embeddings + blocks * (attention + matrices * hidden * mlp))


def _first(model_config: Mapping[str, Any], keys: Iterable[str]) -> int:
    for key in keys:
        if model_config.get(key):
            return int(model_config[key])
    raise ValueError(f"config.json has none of {', '.join(keys)} (model_type {model_config.get('model_type')!r})")


def demo_model_config(spec: Mapping[str, Any], demo: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config.json a demo model's pretrain spec gives it (xlprobe.demo.pretrain.init_model)."""
    pretrain = spec["pretrain"]
    return {
        "model_type": "bloom",
        "hidden_size": int(pretrain["hidden_size"]),
        "n_layer": int(pretrain["n_layer"]),
        "n_head": int(pretrain["n_head"]),
        "vocab_size": int((demo or {}).get("tokenizer_vocab_size", 0)),
    }


def model_config(
    name: str,
    spec: Mapping[str, Any],
    steps: Iterable[str],
    *,
    demo: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    branches: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The config.json of a config's model entry `name` (any of its `steps`: the shape is the same);
    `branches`: step -> branch as discovery recorded them (a `{*}` template cannot spell them)."""
    from xlprobe.checkpoints import CheckpointError, resolve_checkpoint

    if spec["source"] == "demo":
        return demo_model_config(spec, demo)
    checkpoints = []
    for step in steps:
        try:
            branch = (branches or {}).get(str(step))
            checkpoints.append(resolve_checkpoint({"name": name, **spec, **({"branch": branch} if branch else {})}, step))
        except CheckpointError:
            continue
        except Exception as error:  # noqa: BLE001  a `{*}` branch needs the hub's list of refs
            log.info("models.%s: branches not listable here (%s); shape unknown", name, error)
            break  # the hub is unreachable: every other step would wait on it again
    if spec["source"] == "local":
        for checkpoint in checkpoints:
            path = Path(checkpoint.location, "config.json")
            if path.exists():
                return json.loads(path.read_text())
        raise ShapeUnknown(f"models.{name}: no config.json in {spec['path']} for steps {list(steps)}")
    revisions = tuple(dict.fromkeys((c.location, c.revision) for c in checkpoints))
    if not revisions:
        raise ShapeUnknown(f"models.{name}: no step to read config.json at")
    return json.loads(Path(_hub_config_file(revisions, str(cache_dir) if cache_dir else None)).read_text())


@functools.cache
def _hub_config_file(revisions: tuple[tuple[str, str], ...], cache_dir: str | None) -> str:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from xlprobe.checkpoints import is_offline

    for repo, revision in revisions:
        cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir, revision=revision)
        if isinstance(cached, str):
            return cached
    repo, revision = revisions[0]
    if is_offline() or not _hub_reachable():
        raise ShapeUnknown(f"{repo}@{revision}: config.json not in the cache and the hub is offline")
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return hf_hub_download(repo, "config.json", revision=revision, cache_dir=cache_dir)
    except (OSError, HfHubHTTPError) as error:  # unreachable hub, unknown repo or revision: said, not hidden
        raise ShapeUnknown(f"{repo}@{revision}: config.json not readable from the hub ({error})") from None


@functools.cache
def _hub_reachable(timeout: float = 5.0) -> bool:
    """One quick request to the hub: huggingface_hub retries an unreachable host for half a minute."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:  # the hub answered
        return True
    except OSError:  # no route, no name, refused, timed out: offline
        return False
    return True


def model_shape(name: str, spec: Mapping[str, Any], steps: Iterable[str], **where: Any) -> ModelShape:
    """The shape of a config's model entry, read from its config.json (see `model_config`)."""
    return shape_of(model_config(name, spec, list(steps), **where))
