"""The alignment controls: rotations, the shared code, and the benchmark's false-positive check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlprobe.validity import CONDITIONS, Setting, control_languages, random_rotation

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "validity.py"


def class_means(X, y):
    return np.stack([X[y == c].astype(np.float64).mean(0) for c in np.unique(y)])


def test_random_rotation_is_orthogonal():
    q = random_rotation(16, np.random.default_rng(0))
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-10)


@pytest.mark.parametrize("condition, same_code", [("shared_neurons", True), ("shared_rotation", True),
                                                  ("own_rotations", False), ("nothing_shared", False)])
def test_class_means_agree_across_languages_only_where_a_readout_is_shared(condition, same_code):
    setting = Setting(width=32, shared_share=1.0, k=4, rows=4000, attributes=("Number",), languages=("la", "lb"))
    data = control_languages(condition, setting, np.random.default_rng(1))
    (Xa, la), (Xb, lb) = data["la"], data["lb"]
    da, db = (np.diff(class_means(X, y["Number"]), axis=0)[0] for X, y in ((Xa, la), (Xb, lb)))
    cosine = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
    assert (cosine > 0.9) == same_code, cosine


def test_the_benchmark_flags_false_positives_only_where_nothing_readable_is_shared():
    spec = importlib.util.spec_from_file_location("validity_benchmark", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    summary = pd.DataFrame({"measure": "retrieval", "condition": list(CONDITIONS), "detected": [1.0, 0.5, 0.06, 0.05]})
    assert benchmark.control_checks(summary) == ["retrieval in own_rotations: false-positive rate 0.060 > 0.05"]
