"""A hub model's steps discovered from its revisions instead of listed by hand.

`models.<name>.steps: {discover: true, every: N, min: A, max: B, include_final: true}` selects the
branches of the repo that match the revision template ("global_step{step}" -> global_step1000, ...).
The submit host lists them (`list_repo_refs`) at every start of Snakemake and records the list in a file
under the results; processes that must not or cannot reach the hub (SLURM jobs, offline hosts) read the
recorded list, so that every process of one run sees the same steps until the next refresh.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xlprobe.io import read_json, write_json

log = logging.getLogger(__name__)


class DiscoveryError(RuntimeError):
    """Steps that cannot be discovered: no hub, no record, or nothing matching."""


def revision_regex(template: str) -> re.Pattern:
    """The revisions a template names: "global_step{step}" -> ^global_step(\\d+)$."""
    before, _, after = template.partition("{step}")
    return re.compile(f"^{re.escape(before)}(\\d+){re.escape(after)}$")


def matching_steps(revisions: Iterable[str], template: str, selector: dict[str, Any]) -> list[int]:
    """The steps of `revisions` matching `template`, kept by the selector's `every`, `min` and `max`."""
    pattern = revision_regex(template)
    steps = {int(m.group(1)) for m in map(pattern.match, revisions) if m}
    every, low, high = selector.get("every"), selector.get("min"), selector.get("max")
    return sorted(s for s in steps if (not every or s % every == 0) and (low is None or s >= low)
                  and (high is None or s <= high))


def hub_revisions(repo: str) -> list[str]:
    """Branch and tag names of a hub repo (the hub's intermediate checkpoints are branches)."""
    from huggingface_hub import HfApi

    refs = HfApi().list_repo_refs(repo)
    return [ref.name for ref in [*refs.branches, *refs.tags]]


def discover_steps(model: dict[str, Any], record: str | os.PathLike, refresh: bool) -> list[str]:
    """A model's steps (strings, "final" last where selected): listed from the hub and recorded when
    `refresh`, else (or when the hub cannot be reached) read from the record."""
    name, selector = model.get("name", "?"), model["steps"]
    key = f"models.{name}.steps"
    record = Path(record)
    steps = None
    if refresh:
        from huggingface_hub import errors

        unreachable = (OSError, errors.HfHubHTTPError, getattr(errors, "HTTPError", OSError))
        try:
            steps = matching_steps(hub_revisions(model["repo"]), model["revision"], selector)
        except errors.RepositoryNotFoundError:
            raise DiscoveryError(f"{key}: repo '{model['repo']}' not found on the hub") from None
        except unreachable as error:  # no network, offline mode, the hub down: the record says
            log.warning("%s: cannot list the revisions of %s (%s: %s); using the recorded list %s",
                        key, model["repo"], type(error).__name__, error, record)
        else:
            if not steps:
                raise DiscoveryError(f"{key}: no revision of '{model['repo']}' matches '{model['revision']}' "
                                     f"with {selector}")
            recorded = read_json(record)["steps"] if record.is_file() else None
            if recorded != steps:
                write_json(record, {"repo": model["repo"], "revision": model["revision"],
                                    "selector": selector, "steps": steps})
                log.info("%s: %d steps of %s recorded in %s", key, len(steps), model["repo"], record)
    if steps is None:
        if not record.is_file():
            raise DiscoveryError(
                f"{key}: steps are discovered from the hub, but '{model['repo']}' cannot be listed here and "
                f"there is no recorded list ({record}): run snakemake once on a host that reaches the hub"
            )
        steps = read_json(record)["steps"]
    return [str(s) for s in steps] + (["final"] if selector.get("include_final") else [])
