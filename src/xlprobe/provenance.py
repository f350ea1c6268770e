"""What every result file records about how it was made."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import socket
from typing import Any

_LIBRARIES = ("xlprobe", "torch", "transformers", "tokenizers", "peft", "numpy", "scipy", "pandas", "conllu")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance(config_slice: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A JSON-able record: the given fields, the config slice used, library versions, host and time."""
    record: dict[str, Any] = dict(fields)
    if config_slice is not None:
        record["config"] = config_slice
    record["libraries"] = library_versions()
    record["python"] = platform.python_version()
    record["host"] = socket.gethostname()
    record["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return record
