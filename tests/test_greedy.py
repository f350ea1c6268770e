"""Greedy neuron selection: the vectorized path against the per-candidate loop, ties, planted neurons."""

from __future__ import annotations

import numpy as np
import pytest

from xlprobe.greedy import _loop_scores, _VectorizedStep, greedy_select
from xlprobe.probe import class_entropy_bits


def random_problem(seed, n, dim, n_classes, scale=1.0):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(n_classes, dim)) * scale
    bias = rng.normal(size=n_classes)
    X = rng.normal(size=(n, dim)).astype(np.float32) * scale
    y = rng.integers(0, n_classes, n)
    return weight, bias, X, y


@pytest.mark.parametrize("criterion", ["mi", "accuracy"])
@pytest.mark.parametrize(
    "seed, n, dim, n_classes, k, scale",
    [(0, 200, 30, 2, 10, 1.0), (1, 301, 48, 3, 12, 2.0), (2, 150, 64, 7, 8, 0.5), (3, 97, 20, 4, 20, 4.0)],
)
def test_vectorized_picks_the_same_neurons_as_the_loop(criterion, seed, n, dim, n_classes, k, scale):
    weight, bias, X, y = random_problem(seed, n, dim, n_classes, scale)
    test = random_problem(seed + 100, n, dim, n_classes, scale)
    args = {"criterion": criterion, "test_X": test[2], "test_y": test[3], "progress": False}
    fast = greedy_select(weight, bias, X, y, k, method="vectorized", **args)
    slow = greedy_select(weight, bias, X, y, k, method="loop", **args)
    assert fast.selected == slow.selected
    assert len(fast.selected) == min(k, dim) == len(set(fast.selected))
    np.testing.assert_allclose(fast.dev_score, slow.dev_score, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.test_mi, slow.test_mi, rtol=0, atol=1e-12)


def test_vectorized_without_cache_matches_the_loop():
    # A cache budget of 0 bytes recomputes the candidate factors every step.
    weight, bias, X, y = random_problem(5, 250, 40, 3)
    fast = greedy_select(weight, bias, X, y, 10, max_cache_bytes=0, progress=False)
    slow = greedy_select(weight, bias, X, y, 10, method="loop", progress=False)
    assert fast.selected == slow.selected


def test_candidate_scores_match_the_loop_where_the_screen_keeps_them():
    weight, bias, X, y = random_problem(7, 300, 40, 4, scale=2.0)
    X = X.astype(np.float64)
    h = class_entropy_bits(y, 4)
    selected = [3, 17]
    base = bias + X[:, selected] @ weight[:, selected].T
    candidates = np.array([d for d in range(40) if d not in selected])
    for criterion in ("mi", "accuracy"):
        fast = _VectorizedStep(weight, X, y, h, criterion, 2**30).scores(base, candidates)
        slow = _loop_scores(weight, bias, X, y, h, criterion, selected, candidates)
        kept = np.isfinite(fast)
        assert kept.any() and np.argmax(np.where(kept, fast, -np.inf)) == np.argmax(slow)
        np.testing.assert_allclose(fast[kept], slow[kept], rtol=0, atol=1e-12)


def test_extreme_logits_fall_back_to_exact_scores():
    # Logit gaps of hundreds of nats underflow the float32 screen; such candidates are rescored in
    # float64 (all of them here: every score is finite), and the picks stay those of the loop.
    weight, _, X, y = random_problem(11, 120, 16, 3, scale=15.0)
    bias = np.array([0.0, -60.0, 60.0])
    step = _VectorizedStep(weight, X.astype(np.float64), y, class_entropy_bits(y, 3), "mi", 2**30)
    assert np.isfinite(step.scores(np.tile(bias, (120, 1)), np.arange(16))).all()
    fast = greedy_select(weight, bias, X, y, 6, progress=False)
    slow = greedy_select(weight, bias, X, y, 6, method="loop", progress=False)
    assert fast.selected == slow.selected


@pytest.mark.parametrize("method", ["vectorized", "loop"])
def test_exact_ties_go_to_the_lowest_index(method):
    weight, bias, X, y = random_problem(3, 200, 6, 3)
    # Neuron 4 duplicates neuron 1 (same activations, same weights), so they always tie.
    X[:, 4] = X[:, 1]
    weight[:, 4] = weight[:, 1]
    # Neuron 0 and 5 carry nothing: all-zero activations.
    X[:, 0] = 0.0
    X[:, 5] = 0.0
    result = greedy_select(weight, bias, X, y, 6, method=method, progress=False)
    assert result.selected.index(1) < result.selected.index(4)
    assert result.selected.index(0) < result.selected.index(5)


def test_planted_neurons_are_picked_first():
    rng = np.random.default_rng(0)
    n, dim, planted = 600, 50, [7, 23, 41]
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, dim))
    weight = rng.normal(size=(3, dim)) * 0.05  # noise neurons: small weights
    for j, d in enumerate(planted):
        X[:, d] += 3.0 * (y == j)  # neuron d fires for class j
        weight[:, d] = 0.0
        weight[j, d] = 2.0
    result = greedy_select(weight, np.zeros(3), X, y, 5, progress=False)
    assert sorted(result.selected[:3]) == planted
    assert result.dev_score[2] > 0.5 > result.dev_score[0] > 0


def test_greedy_is_deterministic():
    weight, bias, X, y = random_problem(9, 200, 32, 4)
    first = greedy_select(weight, bias, X, y, 10, progress=False)
    second = greedy_select(weight.copy(), bias.copy(), X.copy(), y.copy(), 10, progress=False)
    assert first.to_dict() == second.to_dict()


def test_k_larger_than_width_selects_every_neuron():
    weight, bias, X, y = random_problem(4, 80, 5, 2)
    result = greedy_select(weight, bias, X, y, 50, progress=False)
    assert sorted(result.selected) == list(range(5))


def test_bad_arguments_are_named():
    weight, bias, X, y = random_problem(4, 80, 5, 2)
    with pytest.raises(ValueError, match="criterion"):
        greedy_select(weight, bias, X, y, 2, criterion="f1")
    with pytest.raises(ValueError, match="method"):
        greedy_select(weight, bias, X, y, 2, method="fast")
    with pytest.raises(ValueError, match="single class"):
        greedy_select(weight, bias, X, np.zeros_like(y), 2)
    with pytest.raises(ValueError, match="dev_X"):
        greedy_select(weight, bias, X[:, :3], y, 2)
