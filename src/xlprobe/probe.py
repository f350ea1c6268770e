"""The latent-variable intrinsic probe (Stańczak et al. 2022): a linear classifier on random neuron subsets.

Training maximizes the expected log-likelihood of the linear layer D -> C on the masked input h ⊙ m,
with m drawn from a learned "Poisson sampling" family (independent Bernoulli(sigmoid(w_d)) per neuron),
plus the family's entropy. The family gets a score-function (REINFORCE) gradient. Because the probe
saw random subsets during training, any subset S can afterwards be scored with the same weights by
zeroing the inputs outside S.

Scores follow the protocol: cross-entropy and class entropy in bits, normalized mutual information
MI/H = 1 - CE/H, with H from the class frequencies of the split being scored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_softmax
from tqdm.auto import trange

log = logging.getLogger(__name__)

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- scores
def class_entropy_bits(labels: np.ndarray, n_classes: int) -> float:
    """Entropy (bits) of the empirical class distribution of `labels`."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def subset_logits(
    weight: np.ndarray, bias: np.ndarray, X: np.ndarray, neurons: Sequence[int] | None = None
) -> np.ndarray:
    """Float64 logits [N, C] of the linear probe with every input outside `neurons` set to zero."""
    weight = np.asarray(weight, dtype=np.float64)
    logits = np.broadcast_to(np.asarray(bias, dtype=np.float64), (X.shape[0], weight.shape[0])).copy()
    if neurons is None:
        return logits + np.asarray(X, dtype=np.float64) @ weight.T
    neurons = np.asarray(neurons, dtype=np.int64)
    if neurons.size:
        logits += np.asarray(X[:, neurons], dtype=np.float64) @ weight[:, neurons].T
    return logits


def scores_from_logits(logits: np.ndarray, labels: np.ndarray, class_entropy: float) -> dict[str, float]:
    """Cross-entropy (bits), normalized MI (1 - CE/H) and accuracy of float logits [N, C]."""
    labels = np.asarray(labels)
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    ce_bits = float(-log_probs[np.arange(len(labels)), labels].mean() / LN2)
    accuracy = float((np.argmax(logits, axis=1) == labels).mean())
    return {"mi": 1.0 - ce_bits / class_entropy, "accuracy": accuracy, "cross_entropy": ce_bits}


def mask_family_scores(
    weight: np.ndarray,
    bias: np.ndarray,
    mask_logits: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    class_entropy: float,
    masks: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Scores averaged over `masks` random subsets per row from the probe's learned family
    (neuron d kept with probability sigmoid(mask_logits[d])): the expectation training maximized.

    MI is 1 - E[CE]/H with the cross-entropy averaged over masks and rows; accuracy likewise.
    (With every neuron on, a probe trained on subsets is scored outside what it saw.)
    """
    keep = 1.0 / (1.0 + np.exp(-np.asarray(mask_logits, dtype=np.float64)))
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    ce, accuracy = 0.0, 0.0
    for _ in range(masks):
        for start in range(0, len(labels), 4096):  # row blocks bound the memory of the masked copy
            rows = slice(start, start + 4096)
            block = np.asarray(X[rows], dtype=np.float64)
            logits = subset_logits(weight, bias, block * (rng.random(block.shape) < keep))
            scores = scores_from_logits(logits, labels[rows], class_entropy)
            share = len(block) / (masks * len(labels))
            ce += scores["cross_entropy"] * share
            accuracy += scores["accuracy"] * share
    return {"mi": 1.0 - ce / class_entropy, "accuracy": accuracy, "cross_entropy": ce}


# ----------------------------------------------------------------------------- the probe
class LatentSubsetProbe:
    """Linear probe trained on neuron subsets sampled from a learned Poisson-sampling family.

    Arguments are the protocol's hyperparameters. `restore_best=False` reproduces the released code,
    which kept the last epoch's probe instead of the one with the lowest early-stopping loss.
    After `fit`: `weight_` [C, D], `bias_` [C], `mask_logits_` [D] (numpy float32), `epochs_`
    (epochs trained), `best_epoch_` (1-based epoch of the lowest held-out loss), `history_`
    (held-out loss per epoch), `stopped_early_`.
    """

    def __init__(
        self,
        *,
        lr: float = 1e-2,
        batch_size: int = 256,
        max_epochs: int = 5000,
        patience: int = 50,
        mc_samples: int = 5,
        entropy_scale: float = 1e-2,
        holdout: float = 0.1,
        restore_best: bool = True,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = True,
    ):
        if not 0 < holdout < 1:
            raise ValueError(f"holdout must be in (0, 1), got {holdout}")
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.mc_samples = mc_samples
        self.entropy_scale = entropy_scale
        self.holdout = holdout
        self.restore_best = restore_best
        self.seed = seed
        self.device = device
        self.progress = progress

    # -- training
    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> LatentSubsetProbe:
        """Train on features X [N, D] and integer labels y in [0, n_classes)."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be [N, D] with one label per row; got X {X.shape}, y {y.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values")
        n_classes = int(y.max()) + 1 if n_classes is None else n_classes
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must lie in [0, {n_classes})")
        n, dim = X.shape
        # The released code trains on the first 90% of one shuffle and stops early on the rest.
        n_fit = int((1 - self.holdout) * n)
        if n_fit < 1 or n_fit == n:
            raise ValueError(
                f"{n} training rows are too few to hold out {self.holdout:.0%} for early stopping"
            )

        device = torch.device(_resolve_device(self.device))
        gen = torch.Generator(device=device).manual_seed(self.seed)
        data = torch.from_numpy(X).to(device)
        target = torch.from_numpy(y).to(device)

        # Same initial distributions as nn.Linear and the released family (w ~ U(0, 1)),
        # drawn from our generator so that nothing depends on torch's global seed.
        bound = 1.0 / math.sqrt(dim)
        weight = ((torch.rand(n_classes, dim, generator=gen, device=device) * 2 - 1) * bound).requires_grad_()
        bias = ((torch.rand(n_classes, generator=gen, device=device) * 2 - 1) * bound).requires_grad_()
        mask_logits = torch.rand(dim, generator=gen, device=device).requires_grad_()
        params = [weight, bias, mask_logits]
        optimizer = torch.optim.Adam(params, lr=self.lr)

        order = torch.randperm(n, generator=gen, device=device)
        fit_rows, held_rows = order[:n_fit], order[n_fit:]

        best_loss, best_state, best_epoch, waited = math.inf, None, 0, 0
        history: list[float] = []
        stopped_early = False
        epochs = trange(self.max_epochs, desc="probe epochs", disable=not self.progress, leave=False)
        for epoch in epochs:
            shuffled = fit_rows[torch.randperm(n_fit, generator=gen, device=device)]
            for start in range(0, n_fit, self.batch_size):
                rows = shuffled[start : start + self.batch_size]
                loss = self._training_loss(data[rows], target[rows], weight, bias, mask_logits, gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            held_loss = self._early_stopping_loss(data, target, held_rows, weight, bias, mask_logits, gen)
            history.append(held_loss)
            if held_loss < best_loss:
                best_loss, best_epoch, waited = held_loss, epoch + 1, 0
                best_state = [p.detach().clone() for p in params]
            else:
                waited += 1
                if waited >= self.patience:
                    stopped_early = True
                    break
            epochs.set_postfix(loss=f"{held_loss:.4f}", best=best_epoch, refresh=False)

        final = best_state if (self.restore_best and best_state is not None) else [p.detach() for p in params]
        self.weight_, self.bias_, self.mask_logits_ = (t.cpu().numpy().astype(np.float32) for t in final)
        self.n_classes_ = n_classes
        self.epochs_ = len(history)
        self.best_epoch_ = best_epoch
        self.best_loss_ = best_loss
        self.history_ = history
        self.stopped_early_ = stopped_early
        log.info(
            "probe trained %d epochs (best %d, held-out loss %.4f, %s)",
            self.epochs_,
            best_epoch,
            best_loss,
            "restored best" if self.restore_best else "kept last",
        )
        return self

    def _masked_cross_entropy(self, xb, yb, weight, bias, mask_logits, gen, n_masks):
        """Cross-entropy [n_masks, B] under n_masks masks per row, all drawn and applied in one batch."""
        masks = bernoulli_masks(torch.sigmoid(mask_logits.detach()), (n_masks, *xb.shape), gen).to(xb.dtype)
        logits = torch.matmul(masks * xb, weight.T) + bias  # [n_masks, B, C]
        ce = F.cross_entropy(logits.flatten(0, 1), yb.repeat(n_masks), reduction="none")
        return ce.view(n_masks, -1), masks

    @staticmethod
    def _entropy(mask_logits: torch.Tensor) -> torch.Tensor:
        # Entropy of independent Bernoulli(sigmoid(w)): sum softplus(w) - sigmoid(w) * w (nats).
        return (F.softplus(mask_logits) - torch.sigmoid(mask_logits) * mask_logits).sum()

    def _training_loss(self, xb, yb, weight, bias, mask_logits, gen):
        s = self.mc_samples
        # First s masks: Monte-Carlo likelihood (gradient to the probe); last s: REINFORCE for w.
        ce, masks = self._masked_cross_entropy(xb, yb, weight, bias, mask_logits, gen, 2 * s)
        likelihood_loss = ce[:s].mean()
        log_q = masks[s:] @ mask_logits - F.softplus(mask_logits).sum()  # [s, B]
        reinforce = (ce[s:].detach() * log_q).mean()
        return likelihood_loss + reinforce - self._entropy(mask_logits)

    @torch.no_grad()
    def _early_stopping_loss(self, data, target, rows, weight, bias, mask_logits, gen) -> float:
        total = 0.0
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            ce, _ = self._masked_cross_entropy(
                data[chunk], target[chunk], weight, bias, mask_logits, gen, self.mc_samples
            )
            total += ce.mean(0).sum().item()
        return total / len(rows) - self.entropy_scale * self._entropy(mask_logits).item()

    # -- scoring
    def logits(self, X: np.ndarray, neurons: Sequence[int] | None = None) -> np.ndarray:
        """Float64 logits [N, C] using only `neurons` (all when None)."""
        self._check_fitted(X)
        return subset_logits(self.weight_, self.bias_, X, neurons)

    def score(self, X: np.ndarray, y: np.ndarray, neurons: Sequence[int] | None = None) -> dict[str, float]:
        """Normalized MI (1 - CE/H, bits; H from y's class frequencies), accuracy and CE (bits)."""
        self._check_fitted(X)
        y = np.asarray(y)
        h = class_entropy_bits(y, self.n_classes_)
        if h == 0:
            raise ValueError("normalized MI is undefined when the labels hold a single class")
        return scores_from_logits(self.logits(X, neurons), y, h)

    def family_score(self, X: np.ndarray, y: np.ndarray, masks: int = 32) -> dict[str, float]:
        """Like `score`, averaged over random subsets from the learned family (`mask_family_scores`)."""
        self._check_fitted(X)
        h = class_entropy_bits(np.asarray(y), self.n_classes_)
        if h == 0:
            raise ValueError("normalized MI is undefined when the labels hold a single class")
        return mask_family_scores(self.weight_, self.bias_, self.mask_logits_, X, y, h, masks, self.seed)

    def _check_fitted(self, X: np.ndarray) -> None:
        if not hasattr(self, "weight_"):
            raise RuntimeError("the probe is not fitted; call fit() first")
        if X.shape[1] != self.weight_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, the probe was trained on {self.weight_.shape[1]}")


def bernoulli_masks(keep: torch.Tensor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Boolean masks of `shape`, entry [..., d] ~ Bernoulli(keep[d]) independently.

    Each draw is a 16-bit uniform (four from one 64-bit random word), so probabilities are resolved
    to 2^-16: random numbers dominate the probe's cost on CPU, and this draws 4x fewer of them.
    """
    count = math.prod(shape)
    words = torch.randint(
        -(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64, generator=gen, device=keep.device
    )
    uniform16 = words.view(torch.int16)[:count].view(shape)  # uniform on [-32768, 32767]
    threshold = torch.floor(keep * 65536 - 32768).clamp(-32768, 32767).to(torch.int16)
    return uniform16 < threshold


def _resolve_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
