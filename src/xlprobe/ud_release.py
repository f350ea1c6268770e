"""Fetch a Universal Dependencies release archive once and extract only the treebanks a config names."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from xlprobe.io import atomic_path

log = logging.getLogger(__name__)

# UD v2.1 as used by the paper (LINDAT handle 11234/1-2515).
UD_2_1_URL = (
    "https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-2515/ud-treebanks-v2.1.tgz"
)


class ChecksumError(RuntimeError):
    pass


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None) -> str:
    """Download `url` to `dest` (atomically) and return its sha256, which must equal `sha256` if given."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        found = sha256_of(tmp)
        if sha256 is not None and found != sha256.lower():
            raise ChecksumError(f"{url}: sha256 {found} does not match the configured {sha256}")
    if sha256 is None:
        log.warning("%s: no sha256 configured; downloaded file has sha256 %s", url, found)
    return found


def extract_treebank(archive: str | os.PathLike, folder: str, dest: str | os.PathLike) -> list[Path]:
    """Extract the files of UD_<Name> `folder` from a release archive into `dest` (= ud_root/folder)."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    written = []
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            # Archive layout: ud-treebanks-vX.Y/UD_<Name>/<file>
            if len(parts) == 3 and parts[1] == folder and member.isfile():
                tmp.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                target = tmp / parts[2]
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                written.append(dest / parts[2])
    if not any(p.suffix == ".conllu" for p in written):
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileNotFoundError(f"{archive}: no {folder}/*.conllu in the archive")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return written
