"""The latent-variable probe: scores against hand computations, the objective's gradients, training."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xlprobe.probe import (
    LatentSubsetProbe,
    bernoulli_masks,
    class_entropy_bits,
    mask_family_scores,
    scores_from_logits,
    subset_logits,
)


def test_class_entropy_by_hand():
    assert class_entropy_bits(np.array([0, 0, 1, 1]), 2) == pytest.approx(1.0)
    # 3/4 vs 1/4: 0.75 log2(4/3) + 0.25 log2(4) = 0.811278...
    assert class_entropy_bits(np.array([0, 0, 0, 1]), 3) == pytest.approx(0.8112781244591328)


def test_normalized_mi_by_hand():
    labels = np.array([0, 0, 0, 1])
    # Every row gives its true class probability 0.8: CE = -log2(0.8) bits.
    logit = math.log(0.8 / 0.2)
    logits = np.array([[logit, 0.0], [logit, 0.0], [logit, 0.0], [0.0, logit]])
    scores = scores_from_logits(logits, labels, class_entropy_bits(labels, 2))
    ce = -math.log2(0.8)
    assert scores["cross_entropy"] == pytest.approx(ce)
    assert scores["mi"] == pytest.approx(1 - ce / 0.8112781244591328)
    assert scores["accuracy"] == 1.0


def test_normalized_mi_against_numpy_on_random_logits():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 4)) * 3, rng.integers(0, 4, 50)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ce = -np.mean(np.log2(probs[np.arange(50), labels]))
    freq = np.bincount(labels, minlength=4) / 50
    h = -sum(p * math.log2(p) for p in freq if p > 0)
    scores = scores_from_logits(logits, labels, class_entropy_bits(labels, 4))
    assert scores["mi"] == pytest.approx(1 - ce / h, abs=1e-12)
    assert scores["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))


def test_subset_logits_equal_zeroing_the_other_inputs():
    rng = np.random.default_rng(1)
    weight, bias, X = rng.normal(size=(3, 6)), rng.normal(size=3), rng.normal(size=(5, 6))
    masked = X * np.isin(np.arange(6), [1, 4])
    np.testing.assert_allclose(subset_logits(weight, bias, X, [4, 1]), masked @ weight.T + bias)
    np.testing.assert_allclose(subset_logits(weight, bias, X, []), np.tile(bias, (5, 1)))


def test_mask_family_scores_match_the_enumerated_expectation():
    """Scores averaged over sampled masks converge to the exact sum over all 2^D masks of q(m) x score(m)."""
    rng = np.random.default_rng(2)
    weight, bias, X = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    h = class_entropy_bits(y, 3)
    mask_logits = np.array([0.4, -1.2, 2.0])
    keep = 1 / (1 + np.exp(-mask_logits))
    exact_ce = exact_accuracy = 0.0
    for bits in itertools.product([0, 1], repeat=3):
        q = np.prod(np.where(np.array(bits) == 1, keep, 1 - keep))
        scores = scores_from_logits(subset_logits(weight, bias, X, np.flatnonzero(bits)), y, h)
        exact_ce += q * scores["cross_entropy"]
        exact_accuracy += q * scores["accuracy"]
    estimate = mask_family_scores(weight, bias, mask_logits, X, y, h, masks=3000, seed=0)
    assert estimate["cross_entropy"] == pytest.approx(exact_ce, abs=0.01)
    assert estimate["mi"] == pytest.approx(1 - exact_ce / h, abs=0.01)
    assert estimate["accuracy"] == pytest.approx(exact_accuracy, abs=0.01)
    assert estimate == mask_family_scores(weight, bias, mask_logits, X, y, h, masks=3000, seed=0)


def test_mask_family_scores_at_the_limits_are_all_or_no_neurons():
    rng = np.random.default_rng(3)
    weight, bias, X = rng.normal(size=(2, 5)), rng.normal(size=2), rng.normal(size=(30, 5))
    y = rng.integers(0, 2, 30)
    h = class_entropy_bits(y, 2)
    every = mask_family_scores(weight, bias, np.full(5, 60.0), X, y, h, masks=4)
    none = mask_family_scores(weight, bias, np.full(5, -60.0), X, y, h, masks=4)
    assert every == pytest.approx(scores_from_logits(subset_logits(weight, bias, X), y, h))
    assert none == pytest.approx(scores_from_logits(subset_logits(weight, bias, X, []), y, h))


def test_all_neurons_put_a_subset_probe_outside_what_it_saw():
    """Issue 12: a probe that keeps ~1 neuron in 10 scores a negative MI with all on, a positive one
    under its own family. One informative neuron, 60 noise neurons with the weights a probe fitted on
    sparse subsets gives them (sized for the few that are on at once)."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 2000)
    X = rng.normal(size=(2000, 61))
    X[:, 0] += 2.0 * (2 * y - 1)
    weight = np.zeros((2, 61))
    weight[1, 0], weight[1, 1:] = 2.0, rng.normal(size=60)
    mask_logits = np.full(61, np.log(0.1 / 0.9))
    mask_logits[0] = 5.0
    h = class_entropy_bits(y, 2)
    everything = scores_from_logits(subset_logits(weight, np.zeros(2), X), y, h)
    family = mask_family_scores(weight, np.zeros(2), mask_logits, X, y, h)
    assert everything["mi"] < 0 < family["mi"]


def test_bernoulli_masks_follow_their_probabilities():
    keep = torch.tensor([0.0, 0.05, 0.5, 0.93, 1.0])
    masks = bernoulli_masks(keep, (40000, 5), torch.Generator().manual_seed(0)).float().mean(0)
    np.testing.assert_allclose(masks.numpy(), keep.numpy(), atol=0.01)
    # Probabilities are resolved to 2^-16: a certain neuron is kept with probability 1 - 2^-16.
    assert masks[0] == 0 and masks[-1] > 0.999


def test_training_gradients_are_unbiased_for_the_objective():
    """Many Monte-Carlo masks reproduce the exact gradient of E_q[CE] - H(q), enumerated over all masks."""
    gen = torch.Generator().manual_seed(0)
    dim, n_classes = 3, 2
    x = torch.randn(6, dim, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    weight = torch.randn(n_classes, dim, generator=gen, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    mask_logits = torch.tensor([0.3, -1.0, 1.5], requires_grad=True)

    # Exact: sum over the 8 masks of q(m) * mean CE(m), minus the family's entropy.
    keep = torch.sigmoid(mask_logits)
    objective = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=dim):
        m = torch.tensor(bits)
        q = torch.prod(torch.where(m > 0, keep, 1 - keep))
        objective = objective + q * F.cross_entropy((x * m) @ weight.T + bias, y)
    entropy = -(keep * keep.log() + (1 - keep) * (1 - keep).log()).sum()
    exact = torch.autograd.grad(objective - entropy, [weight, mask_logits])

    probe = LatentSubsetProbe(mc_samples=20000)
    params = [t.detach().clone() for t in (weight, bias, mask_logits)]
    masks = bernoulli_masks(keep.detach(), (40000, *x.shape), np.random.PCG64(1))
    probe._set_gradients(x, y, *params, masks)
    np.testing.assert_allclose(params[0].grad.numpy(), exact[0].numpy(), atol=0.02)
    np.testing.assert_allclose(params[2].grad.numpy(), exact[1].numpy(), atol=0.03)


# The probe's training step before issue 17, kept as the reference for the closed-form gradients:
# autograd on the loss built from [masks, rows, D] masked inputs.
def reference_training_loss(xb, yb, weight, bias, mask_logits, masks, s):
    masks = masks.to(xb.dtype)
    logits = torch.matmul(masks * xb, weight.T) + bias  # [2s, B, C]
    ce = F.cross_entropy(logits.flatten(0, 1), yb.repeat(2 * s), reduction="none").view(2 * s, -1)
    likelihood_loss = ce[:s].mean()
    log_q = masks[s:] @ mask_logits - F.softplus(mask_logits).sum()  # [s, B]
    reinforce = (ce[s:].detach() * log_q).mean()
    entropy = (F.softplus(mask_logits) - torch.sigmoid(mask_logits) * mask_logits).sum()
    return likelihood_loss + reinforce - entropy


@pytest.mark.parametrize("dim, n_classes, rows", [(16, 2, 7), (64, 17, 33)])
def test_closed_form_gradients_equal_autograd_on_the_reference_loss(dim, n_classes, rows):
    """Given the same masks, the gradients equal the old implementation's (float64: to rounding)."""
    gen = torch.Generator().manual_seed(dim)
    s, f64 = 5, torch.float64
    x, y = (
        torch.randn(rows, dim, generator=gen, dtype=f64),
        torch.randint(0, n_classes, (rows,), generator=gen),
    )
    weight = torch.randn(n_classes, dim, generator=gen, dtype=f64)
    bias, mask_logits = (
        torch.randn(n_classes, generator=gen, dtype=f64),
        torch.randn(dim, generator=gen, dtype=f64),
    )
    masks = bernoulli_masks(torch.sigmoid(mask_logits), (2 * s, rows, dim), np.random.PCG64(dim))
    reference = [t.clone().requires_grad_() for t in (weight, bias, mask_logits)]
    expected = torch.autograd.grad(reference_training_loss(x, y, *reference, masks, s), reference)
    params = [weight, bias, mask_logits]
    LatentSubsetProbe(mc_samples=s)._set_gradients(x, y, *params, masks)
    for param, want in zip(params, expected):
        np.testing.assert_allclose(param.grad.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)


def test_bytewise_masks_equal_a_16_bit_comparison():
    """Deciding on the high byte and settling ties with the low byte is the 16-bit test U < T, for
    every U and a spread of thresholds (T = 0, 1, 255, 256, ..., 65535): the same distribution."""
    u = torch.arange(65536, dtype=torch.int32)
    for t in [0, 1, 255, 256, 257, 4097, 32768, 50000, 65280, 65535]:
        by_bytes = ((u >> 8) < (t >> 8)) | (((u >> 8) == (t >> 8)) & ((u & 255) < (t & 255)))
        assert torch.equal(by_bytes, u < t), t
        assert int(by_bytes.sum()) == t  # P(keep) = T / 2^16


def test_bernoulli_masks_settle_ties_with_a_second_byte():
    # keep = (k + 0.5) / 256: every draw whose first byte is k is a tie, kept with probability 1/2.
    keep = torch.tensor([0.5 / 256, 100.5 / 256, 255.5 / 256])
    for source in (np.random.PCG64(3), torch.Generator().manual_seed(3)):
        masks = bernoulli_masks(keep, (200000, 3), source).double().mean(0)
        np.testing.assert_allclose(masks.numpy(), keep.numpy(), atol=4 * math.sqrt(0.25 / 200000))


def planted_data(seed, n=600, dim=8, informative=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    X[:, informative] += 2.5 * (y - 1)
    return X, y


def test_probe_learns_a_planted_neuron():
    X, y = planted_data(0, n=400)
    probe = LatentSubsetProbe(max_epochs=40, patience=10, seed=0, progress=False).fit(X, y)
    test_X, test_y = planted_data(1)
    alone, without = probe.score(test_X, test_y, [2]), probe.score(test_X, test_y, [0, 1, 3, 4, 5, 6, 7])
    assert alone["accuracy"] > 0.75 and alone["mi"] > 0.4
    assert without["mi"] < 0.05
    assert probe.score(test_X, test_y)["mi"] == pytest.approx(
        1
        - scores_from_logits(
            test_X.astype(np.float64) @ probe.weight_.T.astype(np.float64) + probe.bias_,
            test_y,
            class_entropy_bits(test_y, 3),
        )["cross_entropy"]
        / class_entropy_bits(test_y, 3)
    )


def test_same_seed_same_probe_other_seed_other_probe():
    X, y = planted_data(2, n=300)
    fit = lambda seed: LatentSubsetProbe(max_epochs=5, seed=seed, progress=False).fit(X, y)
    a, b, c = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(a.weight_, b.weight_)
    np.testing.assert_array_equal(a.mask_logits_, b.mask_logits_)
    assert a.history_ == b.history_
    assert not np.array_equal(a.weight_, c.weight_)


def test_restore_best_keeps_the_best_epoch_not_the_last():
    X, y = planted_data(3, n=300)
    args = {"max_epochs": 400, "patience": 3, "lr": 0.05, "seed": 5, "progress": False}
    best = LatentSubsetProbe(restore_best=True, **args).fit(X, y)
    last = LatentSubsetProbe(restore_best=False, **args).fit(X, y)
    # Same seed, same trajectory: both stop after `patience` epochs without improvement.
    assert best.stopped_early_ and best.epochs_ == last.epochs_ == best.best_epoch_ + 3
    assert best.history_[best.best_epoch_ - 1] == min(best.history_)
    assert not np.array_equal(best.weight_, last.weight_)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        LatentSubsetProbe(progress=False).fit(np.array([[np.nan, 1.0]] * 20), np.array([0, 1] * 10))
    with pytest.raises(ValueError, match="too few"):
        LatentSubsetProbe(progress=False).fit(np.ones((1, 2)), np.array([0]))
    with pytest.raises(RuntimeError, match="not fitted"):
        LatentSubsetProbe().score(np.ones((3, 2)), np.array([0, 1, 0]))


@pytest.mark.parametrize("size", [0, 7, 64, 4096, 12347])
def test_ties_found_a_word_at_a_time_equal_flatnonzero(size):
    from xlprobe.probe import _flat_ties

    rng = np.random.default_rng(size)
    for density in (0.0, 1 / 256, 0.3, 1.0):
        tied = rng.random(size) < density
        np.testing.assert_array_equal(_flat_ties(tied), np.flatnonzero(tied))


def test_masks_written_into_reused_buffers_equal_fresh_ones():
    """The step's buffers change where the masks are written, not which: same stream, same masks,
    call after call and for shapes that shrink (a minibatch's last row block) or grow again."""
    from xlprobe.probe import MaskSampler, _Workspace

    keep = torch.sigmoid(torch.randn(64, generator=torch.Generator().manual_seed(0)))
    keep[:3] = torch.tensor([0.5 / 256, 100.5 / 256, 255.5 / 256])  # every first byte k ties
    work = _Workspace()
    reused, fresh = MaskSampler(keep, np.random.PCG64(9), work), MaskSampler(keep, np.random.PCG64(9))
    buffers = set()
    for shape in [(10, 128, 64), (10, 37, 64), (5, 128, 64), (10, 200, 64), (10, 128, 64)]:
        got = reused(shape)
        buffers.add(work.bools("masks", (1,)).__array_interface__["data"][0])
        assert torch.equal(got, fresh(shape)), shape
    assert len(buffers) == 2  # allocated once, once more when a larger shape came


def test_a_step_drawing_its_own_masks_equals_one_given_them():
    """_set_gradients with a MaskSampler (row blocks of 2^17 / D rows, the last one short) gives the
    gradients it gives for the same masks passed as one [2s, B, D] tensor: the reused buffers do
    not leak one mask or block into the next."""
    from xlprobe.probe import MaskSampler, _row_blocks

    gen = torch.Generator().manual_seed(1)
    s, rows, dim, n_classes = 5, 300, 1024, 6
    x, y = torch.randn(rows, dim, generator=gen), torch.randint(0, n_classes, (rows,), generator=gen)
    params = [torch.randn(n_classes, dim, generator=gen) * 0.05, torch.randn(n_classes, generator=gen)]
    params.append(torch.randn(dim, generator=gen))
    keep = torch.sigmoid(params[2])
    blocks = _row_blocks(rows, dim)
    assert len(blocks) == 3
    sampler = MaskSampler(keep, np.random.PCG64(5))
    given = torch.cat([sampler((2 * s, len(range(rows)[b]), dim)) for b in blocks], dim=1)
    drawn = [t.clone() for t in params]
    probe = LatentSubsetProbe(mc_samples=s)
    probe._set_gradients(x, y, *params, given)
    probe._set_gradients(x, y, *drawn, MaskSampler(keep, np.random.PCG64(5), probe._work()))
    for want, got in zip(params, drawn):
        assert torch.equal(got.grad, want.grad)  # the same operations on the same numbers


def test_the_torch_generator_path_trains_with_the_reused_buffers(monkeypatch):
    """On a GPU the masks come from torch's generator, not numpy's (no GPU here: the same path is
    forced on the CPU). It shares the step's buffers and must still learn the planted neuron."""
    import xlprobe.probe as probe_module

    monkeypatch.setattr(probe_module, "mask_bit_source", lambda gen, device: gen)
    X, y = planted_data(0, n=400)
    probe = LatentSubsetProbe(max_epochs=40, patience=10, seed=0, progress=False).fit(X, y)
    test_X, test_y = planted_data(1)
    assert probe.score(test_X, test_y, [2])["mi"] > 0.4
    assert probe.score(test_X, test_y, [0, 1, 3, 4, 5, 6, 7])["mi"] < 0.05
