"""Probe replicates, stability of the picks, the overlap's interval and pre-training seeds."""

from __future__ import annotations

import json

from probe_fixture import EXPECTED, probe_result


def test_one_replicate_reproduces_the_stored_probe_result(tmp_path):
    """probe.replicates = 1 (the default) gives the numbers stored from the code before replicates."""
    expected = json.loads(EXPECTED.read_text())
    result = probe_result(tmp_path)
    assert result["attributes"] == expected["attributes"]
