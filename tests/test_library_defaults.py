"""A default is decided in config/schema.yaml: code that calls the library without the workflow gets what a
config that leaves the key out gets (the probe's: tests/test_costs.py)."""

from __future__ import annotations

import inspect

from xlprobe import alignment, checks
from xlprobe.transfer.methods import LORA_DEFAULTS
from xlprobe.workflow_config import SCHEMA, schema_defaults, with_defaults


def keyword_defaults(function) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_the_suspect_margin_is_the_schema_s_everywhere():
    margin = schema_defaults("checks")["suspect_margin"]
    for function in (checks.suspects, alignment.checkpoint_checks):
        assert keyword_defaults(function)["margin"] == margin, function.__qualname__


def test_lora_settings_a_config_leaves_out_are_the_schema_s():
    filled = with_defaults({"transfer": {"lora": {"r": 16}}}, SCHEMA)["transfer"]["lora"]
    assert filled == {**LORA_DEFAULTS, "r": 16}
    assert LORA_DEFAULTS == {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05}  # the paper's
