"""Datasets read from the Hugging Face hub: fetched once on the submit host, read offline by the jobs.

Rule prefetch_dataset (`prefetch`) loads each (repo, config) a workflow config uses, every split, into
the datasets cache and writes a marker naming what it holds. The jobs that read them (transfer,
similarity) run with HF_DATASETS_OFFLINE=1 (rules/common.smk) and find them there (`load_split`); one
that does not gets an error naming the dataset, config and split, and the rule that fetches them.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

from xlprobe.inputs import hub_pairs, task_hub_datasets
from xlprobe.io import write_json
from xlprobe.provenance import provenance

log = logging.getLogger(__name__)

PREFETCH_MARKER = "resources/datasets/{dataset}/{config}.json"


class HubDataError(RuntimeError):
    """A hub dataset that is not in the cache where the job runs and cannot be fetched there."""


def marker_name(repo: str) -> str:
    """A repo id as one path component: facebook/xnli -> facebook--xnli (as huggingface_hub's cache)."""
    return repo.replace("/", "--")


def repo_of(name: str) -> str:
    return name.replace("--", "/", 1)


def go_online() -> None:
    """Let this process use the network: the fetching rules' scripts call this first, because the
    workflow sets offline mode for every job and huggingface_hub reads it once, when imported."""
    import sys

    if "huggingface_hub" in sys.modules or "datasets" in sys.modules:
        raise RuntimeError("go_online() must run before huggingface_hub or datasets is imported")
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[variable] = "0"


def _offline() -> bool:
    flags = (os.environ.get(var, "").strip().lower() for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
    return any(flag in {"1", "true", "yes", "on"} for flag in flags)


def load_split(repo: str, config: str, split: str, cache_dir: str | None = None):
    """One split of a hub dataset (a `datasets` slice such as `train[:100]` too), from the cache when
    offline. A miss names the object and the prefetch rule rather than a bare connection error."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        if not (_offline() or isinstance(error, ConnectionError)):
            raise
        marker = PREFETCH_MARKER.format(dataset=marker_name(repo), config=config)
        raise HubDataError(
            f"dataset '{repo}' config '{config}' split '{split}' is not in the cache "
            f"({cache_dir or 'default datasets cache'}) and the hub cannot be reached "
            f"({'offline mode is on' if _offline() else 'no connection'}): run rule prefetch_dataset "
            f"({marker}) on a host with internet; `snakemake` on the submit host fetches every hub dataset "
            f"of the config before any job starts. ({type(error).__name__}: {error})"
        ) from None


def prefetch(repo: str, config: str, splits: list[str], marker: str | os.PathLike,
             cache_dir: str | None = None) -> dict[str, Any]:
    """Put every split of repo/config into the datasets cache; check the needed `splits` are there;
    write the marker (rows per split, the commit the dataset resolved to, provenance)."""
    import datasets
    from huggingface_hub import HfApi

    data = datasets.load_dataset(repo, config, cache_dir=cache_dir)
    missing = sorted(set(splits) - set(data))
    if missing:
        raise HubDataError(f"dataset '{repo}' config '{config}' has no split(s) {missing} (it has {sorted(data)})")
    record = {
        "repo": repo, "config": config, "commit": HfApi().dataset_info(repo, revision="main").sha,
        "splits": {name: len(part) for name, part in data.items()},
        "features": {name: str(feature) for name, feature in next(iter(data.values())).features.items()},
    }
    record["provenance"] = provenance({"repo": repo, "config": config, "splits": splits}, cache_dir=cache_dir)
    write_json(marker, record)
    log.info("%s %s: %s", repo, config, record["splits"])
    return record


def config_datasets(config: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """Every (repo, config name) a workflow config reads from the hub, with the splits it reads."""
    needed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, task in config.get("transfer", {}).get("tasks", {}).items():
        for key, splits in task_hub_datasets({"name": name, **task}).items():
            needed[key] |= splits
    for key in hub_pairs(config.get("similarity") or {}):
        needed[key].add("train")
    return {key: sorted(splits) for key, splits in sorted(needed.items())}
