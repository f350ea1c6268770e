"""The alignment controls: rotations, the shared code, and the benchmark's false-positive check."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlprobe.validity import CONDITIONS, Setting, control_languages, own_rotations, random_rotation

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "validity.py"


def class_means(X, y):
    return np.stack([X[y == c].astype(np.float64).mean(0) for c in np.unique(y)])


def test_random_rotation_is_orthogonal():
    q = random_rotation(16, np.random.default_rng(0))
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-10)


def test_own_rotations_carry_a_planted_set_into_orthogonal_subspaces():
    setting = Setting(width=40, shared_share=1.0, k=4)
    rng = np.random.default_rng(2)
    planted = {"Number": np.arange(8), "Gender": np.arange(10, 18)}
    rotations = own_rotations(setting, planted, rng)
    assert len(rotations) == len(setting.languages) == 4
    for a, b in itertools.combinations(setting.languages, 2):
        assert np.abs(rotations[a] - rotations[b]).max() > 0.1  # a rotation of each language's own
        for neurons in planted.values():
            # no linear readout of one language's image of the set reads another's
            np.testing.assert_allclose(rotations[a][neurons] @ rotations[b][neurons].T, 0, atol=1e-12)
    for rotation in rotations.values():
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(40), atol=1e-10)
    with pytest.raises(ValueError, match="needs 4 x 8 neurons for disjoint blocks; the width is 24"):
        own_rotations(Setting(width=24, shared_share=1.0, k=4), planted, rng)


@pytest.mark.parametrize("condition, same_code", [("shared_neurons", True), ("shared_rotation", True),
                                                  ("own_rotations", False), ("nothing_shared", False)])
def test_class_means_agree_across_languages_only_where_a_readout_is_shared(condition, same_code):
    setting = Setting(width=32, shared_share=1.0, k=4, rows=4000, attributes=("Number",), languages=("la", "lb"))
    data = control_languages(condition, setting, np.random.default_rng(1))
    (Xa, la), (Xb, lb) = data["la"], data["lb"]
    da, db = (np.diff(class_means(X, y["Number"]), axis=0)[0] for X, y in ((Xa, la), (Xb, lb)))
    cosine = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
    assert (cosine > 0.9) == same_code, cosine
    if condition == "own_rotations":
        assert abs(cosine) < 0.2, cosine  # orthogonal subspaces: only the means' sampling error is left


def test_the_benchmark_flags_false_positives_only_where_nothing_readable_is_shared():
    spec = importlib.util.spec_from_file_location("validity_benchmark", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    summary = pd.DataFrame({"measure": "retrieval", "condition": list(CONDITIONS), "detected": [1.0, 0.5, 0.06, 0.05]})
    assert benchmark.control_checks(summary) == ["retrieval in own_rotations: false-positive rate 0.060 > 0.05"]
