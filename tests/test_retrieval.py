"""Parallel-sentence retrieval: nearest neighbours by cosine against a loop, its null, and the stage's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlprobe.similarity import retrieval, run_similarity, sentence_vectors
from xlprobe.validity import Setting, control_sentences


def retrieval_by_loop(a: np.ndarray, b: np.ndarray) -> float:
    def cos(u, v):
        return u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

    n = len(a)
    forward = np.mean([max(range(n), key=lambda j: cos(a[i], b[j])) == i for i in range(n)])
    backward = np.mean([max(range(n), key=lambda j: cos(b[i], a[j])) == i for i in range(n)])
    return (forward + backward) / 2


def test_retrieval_matches_a_loop_over_cosines():
    rng = np.random.default_rng(0)
    content = rng.normal(size=(40, 16))
    a = content + rng.normal(size=content.shape) * 1.5
    b = content @ np.diag(rng.uniform(0.5, 2, 16)) + rng.normal(size=content.shape) * 1.5
    result = retrieval(a, b, permutations=200, seed=0)
    assert result["retrieval"] == pytest.approx(retrieval_by_loop(a, b))
    assert 0.1 < result["retrieval"] < 1  # neither chance nor perfect: the loop is tested on both sides
    assert result["retrieval_pairs"] == 40
    assert result["retrieval_p"] == pytest.approx(1 / 201)


def test_the_null_of_random_pairings_is_one_in_n():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    result = retrieval(a, b, permutations=2000, seed=3)
    # Under a random pairing each row hits with probability 1/n in either direction.
    assert result["retrieval_null"] == pytest.approx(1 / 50, abs=0.003)
    same = retrieval(a, a, permutations=100)
    assert same["retrieval"] == 1.0 and same["retrieval_p"] == pytest.approx(1 / 101)


@pytest.mark.parametrize("condition, found", [("shared_neurons", True), ("shared_rotation", True),
                                              ("own_rotations", False), ("nothing_shared", False)])
def test_retrieval_finds_shared_content_only_in_a_shared_basis(condition, found):
    setting = Setting(width=64, shared_share=1.0, k=8, languages=("la", "lb"))
    vectors = control_sentences(condition, setting, 200, np.random.default_rng(2))
    result = retrieval(vectors["la"], vectors["lb"], permutations=200)
    assert (result["retrieval_p"] <= 0.05) == found
    if found:
        assert result["retrieval"] > 10 * result["retrieval_null"]


def test_stage_writes_retrieval_over_its_sample(tiny_bloom, tmp_path):
    demo = tmp_path / "demo"
    (demo / "parallel").mkdir(parents=True)
    left, right = ["a b c", "d e", "f g h i", "j k"], ["c b a", "e d", "i h g f", "k j"]
    (demo / "parallel" / "xa.txt").write_text("\n".join(left) + "\n")
    (demo / "parallel" / "xb.txt").write_text("\n".join(right) + "\n")
    (demo / "models" / "tiny").mkdir(parents=True)
    (demo / "models" / "tiny" / "7").symlink_to(tiny_bloom.path)
    out = tmp_path / "7.tsv"
    from xlprobe.workflow_config import schema_defaults

    settings = {**schema_defaults("similarity"), "pairs": [["xa", "xb"]], "layers": [2], "device": "cpu",
                "retrieval_sample": 3}
    run_similarity({"name": "tiny", "source": "demo", "steps": [7]}, 7, settings, out, demo_dir=demo)
    table = pd.read_csv(out, sep="\t").set_index("pooling")
    assert table["pairs"].tolist() == [4, 4] and table["retrieval_pairs"].tolist() == [3, 3]
    a = sentence_vectors(tiny_bloom.model, tiny_bloom.tokenizer, left[:3], [2])
    b = sentence_vectors(tiny_bloom.model, tiny_bloom.tokenizer, right[:3], [2])
    for pooling in ("last", "mean"):
        assert table.loc[pooling, "retrieval"] == pytest.approx(retrieval_by_loop(a[pooling][0], b[pooling][0]))
