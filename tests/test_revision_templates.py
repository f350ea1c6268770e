"""Revision templates of the checkpointed model families: each family's branch names matched, parsed
and spelled back, and branches of another stage or shape left out."""

from __future__ import annotations

import re

import pytest

from xlprobe.checkpoints import CheckpointError, resolve_checkpoint
from xlprobe.discovery import DiscoveryError, branch_of, matching_branches, matching_steps, revision_regex

# family: (template, branches it names -> step, branches of the same repo it must not name)
FAMILIES = {
    "bloom": ("global_step{step}", {"global_step1000": 1000, "global_step600000": 600000},
              ["main", "global_step1000-fix"]),
    "pythia": ("step{step}", {"step0": 0, "step1": 1, "step2": 2, "step4": 4, "step512": 512, "step1000": 1000,
                              "step143000": 143000}, ["main", "step-1000", "steps1000"]),
    "olmo": ("step{step}-tokens{*}B", {"step1000-tokens4B": 1000, "step738000-tokens3095B": 738000},
             ["main", "step1000", "step1000-tokensB", "step1000-tokens4T"]),
    "olmo2": ("stage1-step{step}-tokens{*}B", {"stage1-step1000-tokens5B": 1000, "stage1-step928646-tokens3896B": 928646},
              ["stage2-ingredient1-step500-tokens3B", "step1000-tokens5B", "stage1-step1000-tokens5B-x",
               "stage1-step1000-tokens-5B", "main"]),
    "olmo2-no-stage": ("step{step}-tokens{*}B", {"step1000-tokens5B": 1000},
                       ["stage1-step2000-tokens9B", "stage2-ingredient1-step500-tokens3B"]),
    "smollm2": ("step-{step}", {"step-125000": 125000, "step-2000": 2000}, ["step125000", "main"]),
    "amber": ("ckpt_{step}", {"ckpt_000": 0, "ckpt_001": 1, "ckpt_358": 358}, ["ckpt_", "main"]),
    "lucie": ("step{step}", {"step0005000": 5000, "step0750000": 750000}, ["main"]),
    "openeurollm": ("iter_{step}", {"iter_0124800": 124800, "iter_0000200": 200}, ["iter_12a", "main"]),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_s_branches_are_matched_parsed_and_spelled_back(family):
    template, named, others = FAMILIES[family]
    refs = [*others, *named]
    branches = matching_branches(refs, template, {"discover": True})
    assert branches == {step: branch for branch, step in sorted(named.items(), key=lambda item: item[1])}
    assert matching_steps(refs, template, {"discover": True}) == sorted(named.values())
    for branch, step in named.items():
        assert revision_regex(template).match(branch).group(1).lstrip("0") == str(step).lstrip("0")
        assert branch_of(template, step, refs) == branch
        assert branch_of(template, str(step), refs) == branch
    for branch in others:
        assert not revision_regex(template).match(branch)


def test_a_template_without_list_is_spelled_and_one_with_star_needs_the_list():
    assert branch_of("global_step{step}", 1000) == "global_step1000"
    assert branch_of("step{step}", "final1") == "stepfinal1"  # spelled, not checked, without a list
    with pytest.raises(DiscoveryError, match=r"has a \{\*\} field: its branches must be listed"):
        branch_of("stage1-step{step}-tokens{*}B", 1000)
    with pytest.raises(DiscoveryError, match="no revision matches 'stage1-step{step}-tokens{\\*}B' at step 7"):
        branch_of("stage1-step{step}-tokens{*}B", 7, ["stage1-step1000-tokens5B"])


@pytest.mark.parametrize("template, message", [
    ("main", "has no {step}"),
    ("step{step}-{step}", "names {step} 2 times"),
    ("step{step}-seed{seed}", "unknown field {seed}"),
    ("step{step}-{tokens}", "unknown field {tokens}"),
])
def test_bad_templates_fail_naming_the_template(template, message):
    with pytest.raises(ValueError, match=f"{re.escape(repr(template))}.*{re.escape(message)}"):
        revision_regex(template)


def test_named_fields_take_given_values():
    pattern = revision_regex("seed{seed}-step{step}", {"seed": 3})
    assert pattern.match("seed3-step1000").group(1) == "1000"
    assert not pattern.match("seed4-step1000")


def test_two_branches_of_one_step_are_an_error_naming_both():
    with pytest.raises(DiscoveryError, match="step 5000 names two revisions, 'step5000' and 'step0005000'"):
        matching_steps(["step5000", "step0005000"], "step{step}", {})


def test_resolution_uses_the_recorded_branch_and_lists_the_hub_for_star_templates(monkeypatch):
    from xlprobe import discovery

    model = {"name": "olmo", "source": "hub", "repo": "allenai/OLMo-2-0425-1B",
             "revision": "stage1-step{step}-tokens{*}B"}
    recorded = resolve_checkpoint({**model, "branch": "stage1-step1000-tokens3B"}, "1000")
    assert (recorded.location, recorded.revision) == ("allenai/OLMo-2-0425-1B", "stage1-step1000-tokens3B")
    listed = ["main", "stage1-step1000-tokens3B", "stage2-ingredient1-step1000-tokens3B"]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # listing the hub's branches needs it online
    monkeypatch.setattr(discovery, "hub_revisions", lambda repo: listed)
    assert resolve_checkpoint(model, 1000).revision == "stage1-step1000-tokens3B"
    with pytest.raises(CheckpointError, match=r"models\.olmo\.revision: no revision matches .* at step 2000"):
        resolve_checkpoint(model, 2000)


def test_config_check_names_the_model_s_bad_template():
    from xlprobe.workflow_config import ConfigError, check_config

    config = {"treebanks": {}, "ud_root": ".", "models": {"o": {
        "source": "hub", "repo": "a/b", "revision": "stage1-tokens{*}B", "steps": {"discover": True}}}}
    with pytest.raises(ConfigError, match=r"models\.o\.revision: 'stage1-tokens\{\*\}B' has no \{step\}"):
        check_config(config)


def test_a_record_of_another_template_is_not_read(tmp_path):
    from xlprobe.discovery import discover_steps, record_branches, recorded_branches

    model = {"name": "o", "repo": "a/b", "revision": "stage1-step{step}-tokens{*}B", "steps": {"discover": True}}
    record = tmp_path / "o.json"
    assert record_branches(record, model, {1000: "stage1-step1000-tokens5B"})
    assert not record_branches(record, model, {1000: "stage1-step1000-tokens5B"})  # same list: not rewritten
    assert discover_steps(model, record, refresh=False) == ["1000"]
    assert recorded_branches(record) == {"1000": "stage1-step1000-tokens5B"}
    with pytest.raises(DiscoveryError, match=r"lists the branches of 'stage1-step\{step\}-tokens\{\*\}B', not of "
                                             r"models\.o\.revision 'step\{step\}-tokens\{\*\}B'"):
        discover_steps({**model, "revision": "step{step}-tokens{*}B"}, record, refresh=False)
