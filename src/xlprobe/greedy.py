"""Greedy top-k neuron selection with a trained linear probe, exact and vectorized.

Each step adds the neuron d that maximizes the dev score (normalized MI = 1 - CE/H in bits, or
accuracy) of the probe restricted to S ∪ {d}. The probe is linear, so
    logits(S ∪ {d}) = bias + Σ_{j∈S} x_j W_j + x_d W_d = base + x_d W_d,
and every candidate of a step is scored at once from `base` (chunked over d to bound memory).
The "loop" method is the reference: one masked forward pass over the dev set per candidate, as in
the released code, in float64. The vectorized method screens the candidates in float32 with a
bound on its rounding error, then rescores in float64 every candidate that could win (MI), or
counts correct rows in float64 (accuracy); it therefore picks what float64 scoring would pick.

Tie-break (both methods): candidates whose score is within `TIE_TOLERANCE` of the step's best
are tied, and the lowest neuron index among them wins. The tolerance absorbs the ~1e-16 differences
between summation orders, so the two methods pick the same neurons in the same order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from xlprobe.probe import LN2, class_entropy_bits, scores_from_logits

TIE_TOLERANCE = 1e-12
CRITERIA = ("mi", "accuracy")
METHODS = ("vectorized", "loop")


@dataclass
class GreedyResult:
    """Ordered picks and the scores of the selected set after each pick."""

    selected: list[int] = field(default_factory=list)
    dev_score: list[float] = field(default_factory=list)
    dev_mi: list[float] = field(default_factory=list)
    dev_accuracy: list[float] = field(default_factory=list)
    test_mi: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


def greedy_select(
    weight: np.ndarray,
    bias: np.ndarray,
    dev_X: np.ndarray,
    dev_y: np.ndarray,
    k: int,
    *,
    criterion: str = "mi",
    method: str = "vectorized",
    test_X: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    max_cache_bytes: int = 2 * 2**30,
    progress: bool = True,
) -> GreedyResult:
    """Pick min(k, D) neurons one at a time by dev `criterion` with the probe (weight [C, D], bias [C]).

    After each pick the selected set is also scored on dev (MI, accuracy) and, if given, on test.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    n_classes, dim = weight.shape
    dev_X = np.asarray(dev_X, dtype=np.float64)
    dev_y = np.asarray(dev_y, dtype=np.int64)
    if dev_X.shape != (len(dev_y), dim):
        raise ValueError(f"dev_X must be [{len(dev_y)}, {dim}], got {dev_X.shape}")
    dev_h = _entropy_or_fail(dev_y, n_classes, "dev")
    test_h = None
    if test_X is not None:
        test_y = np.asarray(test_y, dtype=np.int64) if test_y is not None else None
        test_h = _entropy_or_fail(test_y, n_classes, "test")
        if test_X.shape != (len(test_y), dim):
            raise ValueError(f"test_X must be [{len(test_y)}, {dim}], got {test_X.shape}")

    step = (
        _VectorizedStep(weight, dev_X, dev_y, dev_h, criterion, max_cache_bytes)
        if method == "vectorized"
        else None
    )
    result = GreedyResult()
    remaining = np.ones(dim, dtype=bool)
    # Logits of the selected set, grown by one outer product per pick.
    dev_base = np.tile(bias, (len(dev_y), 1))
    test_base = np.tile(bias, (len(test_y), 1)) if test_X is not None else None
    for _ in tqdm(range(min(k, dim)), desc=f"greedy ({method})", disable=not progress, leave=False):
        candidates = np.flatnonzero(remaining)
        if step is not None:
            scores = step.scores(dev_base, candidates)
        else:
            scores = _loop_scores(weight, bias, dev_X, dev_y, dev_h, criterion, result.selected, candidates)
        pick = int(candidates[_tie_break(scores)])
        remaining[pick] = False
        result.selected.append(pick)

        dev_base += dev_X[:, pick, None] * weight[None, :, pick]
        dev = scores_from_logits(dev_base, dev_y, dev_h)
        result.dev_score.append(dev[criterion])
        result.dev_mi.append(dev["mi"])
        result.dev_accuracy.append(dev["accuracy"])
        if test_X is not None:
            test_base += np.asarray(test_X[:, pick, None], dtype=np.float64) * weight[None, :, pick]
            test = scores_from_logits(test_base, test_y, test_h)
            result.test_mi.append(test["mi"])
            result.test_accuracy.append(test["accuracy"])
    return result


def _tie_break(scores: np.ndarray) -> int:
    """Position of the lowest-index candidate within TIE_TOLERANCE of the best score (NaN never wins)."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return int(np.flatnonzero(scores >= scores.max() - TIE_TOLERANCE)[0])


def _entropy_or_fail(labels, n_classes: int, split: str) -> float:
    if labels is None:
        raise ValueError(f"{split} labels are required with {split} features")
    h = class_entropy_bits(labels, n_classes)
    if h == 0:
        raise ValueError(f"the {split} split holds a single class; normalized MI is undefined")
    return h


def _loop_scores(weight, bias, X, y, h, criterion, selected, candidates) -> np.ndarray:
    """Reference: a full masked forward pass over the dev set for every candidate."""
    scores = np.empty(len(candidates))
    mask = np.zeros(weight.shape[1])
    mask[list(selected)] = 1.0
    for i, d in enumerate(candidates):
        mask[d] = 1.0
        logits = (X * mask) @ weight.T + bias
        mask[d] = 0.0
        scores[i] = scores_from_logits(logits, y, h)[criterion]
    return scores


class _VectorizedStep:
    """Scores every candidate of a step at once from the current set's dev logits `base` (float64).

    With z_c = x_d W_dc, s = max_c z_c and B = max_c base_c, the log-partition of S ∪ {d} is
        logsumexp_c(base_c + z_c) = B + s + log Σ_c exp(base_c - B) · exp(z_c - s).
    The factors exp(z_c - s) do not depend on S: they are computed once (and kept while they fit in
    `max_cache_bytes`), so a step costs C multiply-adds and one log per (row, candidate) instead of
    C exponentials. Both factors are <= 1 and one term of the sum is 1, so nothing overflows.

    The sums and logs run in float32 (a screen), with a rigorous bound on their error; every
    candidate that could be the float64 winner (or tie with it) is then rescored in float64 from its
    logits. The pick is therefore the one float64 scoring of every candidate would make.
    """

    BLOCK_ELEMENTS = 2**16  # rows x candidates per block: small enough to stay in cache
    # Below this a float32 sum is not trusted (products of two must stay normal floats, > 1.2e-38);
    # the candidate is rescored in float64 instead.
    SAFE_SUM = 1e-15
    UNIT_ROUNDOFF = 2.0**-24

    def __init__(self, weight, X, y, h, criterion, max_cache_bytes):
        self.Wt = torch.from_numpy(np.ascontiguousarray(weight.T))  # [D, C]
        self.Xt = torch.from_numpy(X).T.contiguous()  # [D, N]
        self.y = torch.from_numpy(y)
        self.h = h
        self.criterion = criterion
        dim, n = self.Xt.shape
        n_classes = self.Wt.shape[1]
        self.width = max(1, self.BLOCK_ELEMENTS // n)
        self.blocks = [slice(start, min(start + self.width, dim)) for start in range(0, dim, self.width)]
        self.cache = None
        if criterion == "mi":
            self.mean_shift = torch.empty(dim, dtype=torch.float64)
            self.mean_true = torch.empty(dim, dtype=torch.float64)  # mean_n x_nd W[d, y_n]
            keep = 4 * n_classes * dim * n <= max_cache_bytes
            self.cache = torch.empty(n_classes, dim, n, dtype=torch.float32) if keep else None
            for block in self.blocks:
                exp_terms, self.mean_shift[block], self.mean_true[block] = self._candidate_terms(block)
                if keep:
                    self.cache[:, block] = exp_terms

    def _candidate_terms(self, block: slice):
        """exp(z_c - s) [C, m, N] (float32), mean_n s [m], mean_n z_{y_n} [m] for the block's candidates."""
        x, w = self.Xt[block], self.Wt[block]
        z = w.T[:, :, None] * x[None]  # [C, m, N]
        shift = z.amax(dim=0)
        true_z = z.gather(0, self.y.expand(1, *shift.shape))[0]
        return (z - shift).exp_().float(), shift.mean(dim=1), true_z.mean(dim=1)

    def scores(self, base: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self.criterion == "mi":
            return self._mi_scores(base, candidates)
        return self._accuracy_scores(base)[candidates]

    def _mi_scores(self, base: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Float64 MI of the candidates that can win; -inf for those the screen rules out."""
        base_t = torch.from_numpy(base)
        top = base_t.amax(dim=1)
        factor = (base_t - top[:, None]).exp().T.float().contiguous()  # [C, N], each <= 1
        constant = top.mean() - base_t.gather(1, self.y[:, None]).mean()
        n_classes, n = factor.shape
        mean_log = torch.empty(self.Xt.shape[0], dtype=torch.float64)
        smallest = torch.empty(self.Xt.shape[0], dtype=torch.float32)
        buffer = torch.empty(self.width, n, dtype=torch.float32)
        half = n // 2
        pair_buffer = torch.empty(self.width, half, dtype=torch.float32)
        for block in self.blocks:
            exp_terms = self.cache[:, block] if self.cache is not None else self._candidate_terms(block)[0]
            total = torch.mul(exp_terms[0], factor[0], out=buffer[: exp_terms.shape[1]])
            for c in range(1, n_classes):
                total.addcmul_(exp_terms[c], factor[c])
            smallest[block] = total.amin(dim=1)
            # log a + log b = log(ab): one log per pair of rows halves the dominant cost.
            paired = torch.mul(total[:, :half], total[:, half : 2 * half], out=pair_buffer[: len(total)])
            log_total = paired.log_().sum(dim=1, dtype=torch.float64)
            if n % 2:
                log_total += total[:, -1].double().log()
            mean_log[block] = log_total / n
        screen = 1.0 - (constant + self.mean_shift + mean_log - self.mean_true) / (LN2 * self.h)

        # Error of the float32 part, in nats per row: the C-term sum is off by at most ~(C + 3) units
        # of roundoff (relative), the pair product by one more, the log by 2 ulp of |log product|
        # (<= 2 |log smallest sum| per row); doubled for safety.
        smallest = smallest.double()
        worst_log = torch.clamp(-torch.log(smallest), min=math.log(n_classes))
        error_nats = 2 * self.UNIT_ROUNDOFF * (n_classes + 4 + 2 * worst_log)
        error = torch.where(smallest >= self.SAFE_SUM, error_nats / (LN2 * self.h), math.inf)

        screen, error = screen[candidates].numpy(), error[candidates].numpy()
        finite = np.where(np.isfinite(error), screen, -np.inf)
        leader = int(np.argmax(finite))
        contenders = (screen >= finite[leader] - error[leader] - error - TIE_TOLERANCE) | ~np.isfinite(error)
        scores = np.full(len(candidates), -np.inf)
        scores[contenders] = self._exact_mi(base, candidates[contenders])
        return scores

    def _exact_mi(self, base: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Float64 normalized MI of S ∪ {d} for each d, from its logits with a max-shifted logsumexp."""
        base_t = torch.from_numpy(base)
        n = base.shape[0]
        out = []
        for start in range(0, len(candidates), self.width):
            idx = torch.from_numpy(candidates[start : start + self.width])
            logits = base_t[None] + self.Xt[idx][:, :, None] * self.Wt[idx][:, None, :]  # [m, N, C]
            true = logits.gather(2, self.y.expand(len(idx), n)[:, :, None])[:, :, 0]
            ce_bits = (torch.logsumexp(logits, dim=2) - true).sum(dim=1) / (n * LN2)
            out.append(1.0 - ce_bits / self.h)
        return torch.cat(out).numpy() if out else np.empty(0)

    def _accuracy_scores(self, base: np.ndarray) -> np.ndarray:
        base_t = torch.from_numpy(base)
        base_cols = base_t.T.contiguous()  # [C, N]
        base_true = base_t.gather(1, self.y[:, None])[:, 0]
        n_classes = base_cols.shape[0]
        correct_counts = torch.empty(self.Xt.shape[0], dtype=torch.float64)
        for block in self.blocks:
            x, w = self.Xt[block], self.Wt[block]
            true_logit = base_true[None, :] + x * w[:, self.y]
            correct = torch.ones_like(x, dtype=torch.bool)
            for c in range(n_classes):
                logit = base_cols[c][None, :] + x * w[:, c : c + 1]
                # argmax takes the first of equal logits: class y wins ties only against later classes.
                beats = torch.where(self.y[None, :] > c, true_logit > logit, true_logit >= logit)
                correct &= beats
            correct_counts[block] = correct.sum(dim=1).double()
        return (correct_counts / base.shape[0]).numpy()
