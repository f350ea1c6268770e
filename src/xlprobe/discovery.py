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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xlprobe.io import read_json, write_json

log = logging.getLogger(__name__)


class DiscoveryError(RuntimeError):
    """Steps that cannot be discovered: no hub, no record, or nothing matching."""


# A template's fields: `{step}` (once), `{*}` (a varying part that is ignored, e.g. OLMo's token
# count), or another name whose value the caller gives (`values`).
FIELD = re.compile(r"\{(\*|[A-Za-z_]\w*)\}")
# What `{*}` stands for: one hyphen-free part of a branch name ("5", "4.2", "abc_1"). Without
# hyphens it cannot swallow a stage prefix, so "stage1-step{step}-tokens{*}B" never matches a
# stage-2 branch.
ANY = r"[A-Za-z0-9_.]+"


def revision_regex(template: str, values: dict[str, Any] | None = None) -> re.Pattern:
    """The revisions a template names, the step (leading zeros allowed) as group 1:
    "global_step{step}" -> ^global_step(\\d+)$; `values` fills named fields other than step."""
    values = values or {}
    parts, at, steps = [], 0, 0
    for field in FIELD.finditer(template):
        parts.append(re.escape(template[at : field.start()]))
        name, at = field.group(1), field.end()
        if name == "step":
            steps += 1
            parts.append(r"(\d+)")
        elif name == "*":
            parts.append(f"(?:{ANY})")
        elif name in values:
            parts.append(re.escape(str(values[name])))
        else:
            known = ", ".join(["{step}", "{*}", *(f"{{{v}}}" for v in values)])
            raise ValueError(f"'{template}': unknown field {{{name}}} (fields: {known})")
    parts.append(re.escape(template[at:]))
    if steps == 0:
        raise ValueError(f"'{template}' has no {{step}}; every step would be the same")
    if steps > 1:
        raise ValueError(f"'{template}' names {{step}} {steps} times; name it once")
    return re.compile(f"^{''.join(parts)}$")


def matching_branches(revisions: Iterable[str], template: str, selector: dict[str, Any] | None = None,
                      values: dict[str, Any] | None = None) -> dict[int, str]:
    """{step: branch} of the `revisions` matching `template`, kept by the selector's `every`, `min` and
    `max`. Two branches of one step (step5000 and step0005000) are ambiguous: an error names both."""
    pattern, selector = revision_regex(template, values), selector or {}
    branches: dict[int, str] = {}
    for revision in revisions:
        match = pattern.match(revision)
        if not match:
            continue
        step = int(match.group(1))
        if step in branches and branches[step] != revision:
            raise DiscoveryError(f"revision template '{template}': step {step} names two revisions, "
                                 f"'{branches[step]}' and '{revision}'; make the template narrower")
        branches[step] = revision
    every, low, high = selector.get("every"), selector.get("min"), selector.get("max")
    return {s: branches[s] for s in sorted(branches) if (not every or s % every == 0)
            and (low is None or s >= low) and (high is None or s <= high)}


def matching_steps(revisions: Iterable[str], template: str, selector: dict[str, Any]) -> list[int]:
    """The steps of `revisions` matching `template`, kept by the selector's `every`, `min` and `max`."""
    return list(matching_branches(revisions, template, selector))


def branch_of(template: str, step: int | str, revisions: Iterable[str] | None = None) -> str:
    """The branch of a step: the template filled in where it has only `{step}` and no list is given,
    else the one listed revision that matches it at this step (zero padding and `{*}` need the list)."""
    if revisions is None:
        revision_regex(template)  # a template error, not a wrong branch name
        if "{*}" in template:
            raise DiscoveryError(f"revision template '{template}' has a {{*}} field: its branches must be listed")
        return template.replace("{step}", str(step))
    found = matching_branches(revisions, template).get(int(step))
    if found is None:
        raise DiscoveryError(f"no revision matches '{template}' at step {step}")
    return found


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
    repos = seeded_repos(model)  # a {seed} in the revision stops here, on every host
    if refresh:
        from huggingface_hub import errors

        unreachable = (OSError, errors.HfHubHTTPError, getattr(errors, "HTTPError", OSError))
        repo = model["repo"]
        try:
            listed = {}
            for seed, repo in repos:
                listed[seed] = matching_branches(hub_revisions(repo), model["revision"], selector)
            branches = steps_of_every_seed(listed, key)
        except errors.RepositoryNotFoundError:
            raise DiscoveryError(f"{key}: repo '{repo}' not found on the hub") from None
        except unreachable as error:  # no network, offline mode, the hub down: the record says
            log.warning("%s: cannot list the revisions of %s (%s: %s); using the recorded list %s",
                        key, model["repo"], type(error).__name__, error, record)
        else:
            if not branches:
                raise DiscoveryError(f"{key}: no revision of '{model['repo']}' matches '{model['revision']}' "
                                     f"with {selector}")
            steps = list(branches)
            if record_branches(record, model, branches):
                log.info("%s: %d steps of %s recorded in %s", key, len(steps), model["repo"], record)
    if steps is None:
        if not record.is_file():
            raise DiscoveryError(
                f"{key}: steps are discovered from the hub, but '{model['repo']}' cannot be listed here and "
                f"there is no recorded list ({record}): run snakemake once on a host that reaches the hub"
            )
        recorded = read_json(record)
        if recorded.get("revision", model["revision"]) != model["revision"]:
            raise DiscoveryError(f"{key}: {record} lists the branches of '{recorded['revision']}', not of "
                                 f"models.{name}.revision '{model['revision']}': run snakemake once on a host "
                                 "that reaches the hub")
        steps = recorded["steps"]
    return [str(s) for s in steps] + (["final"] if selector.get("include_final") else [])


def seeded_repos(model: Mapping[str, Any]) -> list[tuple[int | None, str]]:
    """(seed, repo) to list: each seed's repo where `repo` has a {seed} field (PolyPythias:
    EleutherAI/pythia-160m-seed{seed}), else the repo itself. A {seed} in `revision` names a branch per
    seed, which one recorded list of branches cannot hold."""
    name = model.get("name", "?")
    if "{seed}" in str(model.get("revision", "")):
        raise DiscoveryError(f"models.{name}.revision: a {{seed}} field cannot be discovered (the recorded list "
                             "holds one branch per step); put {seed} in repo, or list the steps")
    if "{seed}" not in model["repo"]:
        return [(None, model["repo"])]
    return [(seed, model["repo"].replace("{seed}", str(seed))) for seed in model.get("seeds", [])]


def steps_of_every_seed(listed: Mapping[int | None, dict[int, str]], key: str) -> dict[int, str]:
    """The {step: branch} that every seed's repo has (one pre-training grid for all seeds); a warning names
    the steps some seed lacks."""
    first, *others = listed.values()
    common = {step: branch for step, branch in first.items() if all(o.get(step) == branch for o in others)}
    anywhere = set().union(*listed.values())
    for seed, branches in listed.items():
        missing = sorted(anywhere - set(branches))
        if missing:
            log.warning("%s: seed %s has no branch for steps %s; only the steps every seed has are run",
                        key, seed, missing)
    return common


def record_branches(record: str | os.PathLike, model: dict[str, Any], branches: dict[int, str]) -> bool:
    """Write the record of a model's discovered {step: branch}, unless it already says the same;
    whether it wrote."""
    listed = {"repo": model["repo"], "revision": model["revision"], "selector": model["steps"],
              "steps": list(branches), "branches": {str(s): b for s, b in branches.items()}}
    record = Path(record)
    if record.is_file() and read_json(record) == listed:
        return False
    write_json(record, listed)
    return True


def recorded_branches(record: str | os.PathLike) -> dict[str, str]:
    """{step: branch} as discovery recorded them (zero-padded or `{*}` branches cannot be spelled from
    the step); empty where there is no record."""
    record = Path(record)
    return dict(read_json(record).get("branches", {})) if record.is_file() else {}
