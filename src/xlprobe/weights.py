"""Which checkpoints hold the same weights: a sha256 per weight file, and duplicates among a model's steps.

Public reports say some published BLOOM branches hold another step's weights (bloom-560m-intermediate
`global_step500000` = `global_step10000`). A checkpoint's weights are named by the sha256 of each weight
file (`*.safetensors`, or `*.bin` where the revision has no safetensors): the hub's own LFS sha256 where
its metadata gives one (no download needed to know it), else the sha256 of the file on disk. Both are
the sha256 of the file's bytes, so records from either source compare with each other.

Two steps are duplicates when they have the same weight files with the same hashes. Identical bytes
are what a republished or mislabelled branch gives; two different trainings never do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from xlprobe.ud_release import sha256_of

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The weight files of a checkpoint folder: its safetensors files, else its .bin files (one format,
    as the loader reads one)."""
    folder = Path(folder)
    for pattern in WEIGHT_PATTERNS:
        found = sorted(p for p in folder.iterdir() if p.is_file() and fnmatch(p.name, pattern))
        if found:
            return found
    return []


def lfs_hashes(siblings: Iterable[Any]) -> dict[str, str]:
    """file name -> the hub's LFS sha256, for the files whose metadata has one (`RepoSibling.lfs`)."""
    hashes = {}
    for sibling in siblings or ():
        lfs = getattr(sibling, "lfs", None)
        sha = (lfs.get("sha256") if isinstance(lfs, Mapping) else getattr(lfs, "sha256", None)) if lfs else None
        if sha:
            hashes[sibling.rfilename] = sha
    return hashes


def hash_folder(folder: str | os.PathLike, siblings: Iterable[Any] | None = None) -> dict[str, dict[str, str]]:
    """file name -> {sha256, from} of a checkpoint folder's weight files: the hub's LFS sha256 where the
    revision's metadata (`siblings`) has one (`from: lfs`), else the file hashed (`from: file`: a local
    or demo checkpoint, or a server without LFS metadata, such as olah's git mirrors)."""
    lfs = lfs_hashes(siblings or ())
    hashes = {}
    for path in weight_files(folder):
        hashes[path.name] = (
            {"sha256": lfs[path.name], "from": "lfs"} if path.name in lfs else {"sha256": sha256_of(path), "from": "file"}
        )
    if not hashes:
        raise ValueError(f"{folder}: no weight files ({', '.join(WEIGHT_PATTERNS)})")
    return hashes


def revision_siblings(repo: str, revision: str) -> list[Any] | None:
    """The revision's file metadata (`model_info(..., files_metadata=True).siblings`), or None offline or
    where the hub does not answer it (the hashes then come from the files)."""
    from huggingface_hub import HfApi

    from xlprobe.checkpoints import is_offline

    if is_offline():
        return None
    try:
        return list(HfApi().model_info(repo, revision=revision, files_metadata=True).siblings or [])
    except Exception as error:  # noqa: BLE001 - any failure here only means: hash the files
        log.warning("%s@%s: no file metadata from the hub (%s); hashing the files", repo, revision, error)
        return None
