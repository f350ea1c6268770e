"""A small planted input and the probe settings of config/test.yaml, shared by the reproduction test
and the script that stored its expected result (tests/data/probe_r1.json)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

from xlprobe.io import read_json, write_json
from xlprobe.probing import probe_treebank
from xlprobe.validity import Setting, neuron_scales, plant, synthetic_language, write_treebank

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "data" / "probe_r1.json"
SEED = 0
# Per-run fields that are no result (time, library versions, paths).
VOLATILE = ("seconds", "provenance")


def test_probe_config() -> dict:
    """config/test.yaml's probe section with the schema's defaults, on the CPU."""
    from xlprobe.workflow_config import schema_defaults

    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    return {**schema_defaults("probe"), **config["probe"], "device": "cpu"}


def planted_inputs(folder: Path) -> dict[str, Path]:
    """One language of the validity benchmark's planted activations (D = 32, 600 words)."""
    setting = Setting(width=32, shared_share=0.5, k=5, rows=600, planted=4)
    rng = np.random.default_rng(SEED)
    planted = plant(setting, rng)
    scales = neuron_scales(setting, rng)
    X, labels = synthetic_language(setting, {a: planted[a]["la"] for a in planted}, scales, rng)
    return write_treebank(folder, X, labels, rng)


def probe_result(folder: Path, replicates: int = 1, **probe_config) -> dict:
    """The probe result of the planted input, without its volatile fields."""
    inputs = planted_inputs(folder)
    out = folder / "probe.json"
    probe_treebank(*inputs.values(), out, probe_config={**test_probe_config(), **probe_config}, seed=SEED,
                   labels={"treebank": "la", "language": "la"}, progress=False, replicates=replicates)
    return strip(read_json(out))


def strip(record):
    if isinstance(record, dict):
        return {key: strip(value) for key, value in record.items() if key not in VOLATILE}
    if isinstance(record, list):
        return [strip(value) for value in record]
    return record


if __name__ == "__main__":  # store the expected result: python tests/probe_fixture.py WORKDIR
    write_json(EXPECTED, probe_result(Path(sys.argv[1])))
