"""Cross-lingual probe transfer: is an attribute read the same way in two languages, whatever neurons hold it?

A linear classifier trained on language A's train words of an attribute predicts the attribute of
language B's test words, over the values both languages kept. Neuron overlap asks whether A and B keep
the attribute in the same few neurons; this asks whether they share a readout, which a rotation of the
basis common to both languages leaves intact.

Choices, stated once:
- The classifier is plain multinomial logistic regression (L2 1e-3 on the weights, full-batch L-BFGS
  from zeros: deterministic and seconds on a CPU), not the latent-variable probe: the probe's masks
  and Monte-Carlo subsets answer which neurons, not whether a readout carries over, and its training
  is minutes where this is seconds, which the permutation null multiplies.
- Each matrix (A's train words, B's test words) is standardized per neuron by its own rows' mean and
  sd. A language's mean vector and scale differ from another's in any language model; without this a
  shared readout is hidden behind an offset. No labels are used for it.
- `accuracy`: on B's test words of the shared values; `majority_accuracy`: B's most frequent of them;
  `own_accuracy`: B's own classifier (trained on B's train words of the shared values) on the same
  words; `normalized` = (accuracy - majority) / (own - majority): 0 at the majority class, 1 as good as
  B's own readout (NaN where B's own classifier beats its majority class by less than 0.02).
- The null: A's train labels permuted `permutations` times (seeded), a classifier fitted to each and
  scored on B like the real one. `null_mean` and `null_q95` (the 95th percentile) describe it;
  `p_permutation` = (1 + #{null >= accuracy}) / (1 + permutations), an exact permutation p-value (20
  permutations: the smallest is 1/21 < 0.05). All classifiers of one training set are fitted in one
  L-BFGS run of their summed losses: the problem is separable, so each reaches its own optimum.
- The permuted classifiers predict classes in proportion and so score below B's majority class; a
  readout of A that carries nothing of B's attribute but guesses B's majority class often would beat
  them. So transfer must also beat the majority class: `p_majority` is the one-sided binomial test
  of the test words' hits against the majority share, and `p_value` = max(p_permutation, p_majority)
  (rejecting only when both reject keeps the level of each).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from xlprobe.identity import with_identity
from xlprobe.io import read_json, write_json, write_tsv
from xlprobe.provenance import provenance, sidecar_path
from xlprobe.wordtable import read_attribute_table, read_word_table

log = logging.getLogger(__name__)

L2 = 1e-3
MAX_ITER = 200
# L-BFGS stops when the gradient or the loss's change falls below these (torch's defaults are 1e-7 and
# 1e-9): the accuracy settles long before, and the permuted-label fits crawl towards them.
TOLERANCE_GRAD = 1e-5
TOLERANCE_CHANGE = 1e-6
PERMUTATIONS = 20
MIN_OWN_GAIN = 0.02  # accuracy over the majority class that B's own readout needs for `normalized`
COLUMNS = [
    "attribute",
    "treebank_a",
    "language_a",
    "treebank_b",
    "language_b",
    "classes",
    "train_rows",
    "test_rows",
    "accuracy",
    "majority_accuracy",
    "own_accuracy",
    "normalized",
    "null_mean",
    "null_q95",
    "p_permutation",
    "p_majority",
    "p_value",
    "permutations",
]


# ----------------------------------------------------------------------------- the classifier
def standardized(X: np.ndarray) -> torch.Tensor:
    """Each neuron centred and scaled by its own rows' mean and sd (float32)."""
    X = np.asarray(X, dtype=np.float32)
    return torch.from_numpy((X - X.mean(0)) / (X.std(0) + 1e-6))


def fit_logistic(
    X: np.ndarray, labels: Sequence[np.ndarray], n_classes: int, l2: float = L2, max_iter: int = MAX_ITER
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regressions of one standardized X on each label vector, fitted together.

    Returns weights [M, D, C] and biases [M, C] for the M label vectors. The summed loss is separable,
    so each classifier reaches the optimum it would reach alone.
    """
    x = standardized(X)
    y = torch.from_numpy(np.stack([np.asarray(v, dtype=np.int64) for v in labels]).T.copy())  # [N, M]
    m, (n, d) = len(labels), x.shape
    # One [D, M * C] matrix: the M classifiers' logits in one matrix product.
    weight = torch.zeros(d, m * n_classes, requires_grad=True)
    bias = torch.zeros(m * n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=TOLERANCE_GRAD, tolerance_change=TOLERANCE_CHANGE)

    def closure():
        optimizer.zero_grad()
        logits = (x @ weight + bias).view(n * m, n_classes)
        loss = torch.nn.functional.cross_entropy(logits, y.reshape(-1), reduction="sum") / n
        loss = loss + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return (weight.detach().view(d, m, n_classes).permute(1, 0, 2).contiguous(),
            bias.detach().view(m, n_classes))


def accuracies(weight: torch.Tensor, bias: torch.Tensor, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Accuracy of each of the M classifiers on standardized X."""
    logits = torch.einsum("nd,mdc->mnc", standardized(X), weight) + bias[:, None, :]
    return (logits.argmax(-1) == torch.from_numpy(np.asarray(y, dtype=np.int64))).float().mean(1).numpy()


def majority_accuracy(y: np.ndarray) -> float:
    return float(np.bincount(y).max() / len(y))


@dataclass
class Readout:
    """A's classifier (row 0) and its permutation nulls (rows 1..) over a fixed class list."""

    weight: torch.Tensor
    bias: torch.Tensor
    rows: int

    @classmethod
    def fit(cls, X, y, n_classes, permutations=PERMUTATIONS, seed=0, l2=L2, max_iter=MAX_ITER) -> Readout:
        rng = np.random.default_rng(seed)
        labels = [y, *(rng.permutation(y) for _ in range(permutations))]
        return cls(*fit_logistic(X, labels, n_classes, l2, max_iter), rows=len(y))

    def score(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """accuracy, majority_accuracy, the null (mean, 95th percentile) and the p-values on (X, y)."""
        scores = accuracies(self.weight, self.bias, X, y)
        real, null = float(scores[0]), scores[1:]
        result = {"accuracy": real, "majority_accuracy": majority_accuracy(y), "permutations": len(null)}
        hits = round(real * len(y))
        result["p_majority"] = float(stats.binomtest(hits, len(y), result["majority_accuracy"], "greater").pvalue)
        if len(null):
            result |= {
                "null_mean": float(null.mean()),
                "null_q95": float(np.quantile(null, 0.95)),
                "p_permutation": float((1 + (null >= real).sum()) / (1 + len(null))),
            }
            result["p_value"] = max(result["p_permutation"], result["p_majority"])
        return result


def normalized_score(accuracy: float, majority: float, own: float) -> float:
    """(accuracy - majority) / (own - majority); NaN where B's own readout beats its majority class by
    less than MIN_OWN_GAIN: a denominator near 0 would swamp any mean over pairs."""
    return (accuracy - majority) / (own - majority) if own - majority >= MIN_OWN_GAIN else float("nan")


def encode(names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    return pd.Categorical(np.asarray(names), categories=list(classes)).codes.astype(np.int64)


def probe_transfer(
    train: tuple[np.ndarray, Sequence[str]],
    test: tuple[np.ndarray, Sequence[str]],
    own_train: tuple[np.ndarray, Sequence[str]] | None = None,
    dev: tuple[np.ndarray, Sequence[str]] | None = None,
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    l2: float = L2,
    max_iter: int = MAX_ITER,
) -> dict[str, Any]:
    """A's (X, labels) -> B's (X, labels), over the class names both have; `own_train` is B's train
    words for its own classifier (then `own_accuracy` and `normalized`), `dev` A's dev words (then
    `dev_accuracy`, A's classifier in its own language)."""
    (train_X, train_names), (test_X, test_names) = train, test
    classes = sorted(set(train_names) & set(test_names))
    if len(classes) < 2:
        raise ValueError(f"fewer than 2 classes shared by the training and test labels: {classes}")
    train_rows, test_rows = np.isin(train_names, classes), np.isin(test_names, classes)
    readout = Readout.fit(np.asarray(train_X)[train_rows], encode(np.asarray(train_names)[train_rows], classes),
                          len(classes), permutations, seed, l2, max_iter)
    test_y = encode(np.asarray(test_names)[test_rows], classes)
    result = {"classes": classes, "train_rows": int(train_rows.sum()), "test_rows": int(test_rows.sum()),
              **readout.score(np.asarray(test_X)[test_rows], test_y)}
    if dev is not None:
        dev_X, dev_names = dev
        rows = np.isin(dev_names, classes)
        result["dev_accuracy"] = readout.score(np.asarray(dev_X)[rows], encode(np.asarray(dev_names)[rows], classes))["accuracy"]
    if own_train is not None:
        own_X, own_names = own_train
        rows = np.isin(own_names, classes)
        own = Readout.fit(np.asarray(own_X)[rows], encode(np.asarray(own_names)[rows], classes), len(classes),
                          0, seed, l2, max_iter)
        result["own_accuracy"] = own.score(np.asarray(test_X)[test_rows], test_y)["accuracy"]
        result["normalized"] = normalized_score(result["accuracy"], result["majority_accuracy"], result["own_accuracy"])
    return result


# ----------------------------------------------------------------------------- the workflow stage
@dataclass
class Treebank:
    """One treebank's probed words at one layer: its name, language, words, kept values, activations."""

    name: str
    language: str
    words: pd.DataFrame
    kept: dict[str, list[str]]
    activations: np.ndarray
    skipped: frozenset = frozenset()  # sentences the dump left out (meta.json)

    def rows(self, attribute: str, split: str, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(activations, codes into `classes`) of the split's words with one of `classes`."""
        words = self.words
        chosen = ~words["sentence_id"].isin(self.skipped) & (words["split"] == split) & words[attribute].isin(classes)
        index = np.flatnonzero(chosen.to_numpy())
        return np.asarray(self.activations[index], dtype=np.float32), encode(words[attribute].to_numpy()[index], classes)


def load_treebank(name: str, language: str, words_path, attributes_path, activations_path, meta_path) -> Treebank:
    from xlprobe.probing import _kept_values

    words = read_word_table(words_path)
    activations = np.load(activations_path, mmap_mode="r")
    if activations.ndim != 2 or activations.shape[0] != len(words):
        raise ValueError(
            f"{activations_path}: shape {activations.shape} does not match the {len(words)} rows of {words_path}"
        )
    kept = _kept_values(read_attribute_table(attributes_path), attributes_path)
    missing = [a for a in kept if a not in words.columns]
    if missing:
        raise ValueError(f"{attributes_path}: attributes {missing} have no column in {words_path}")
    skipped = frozenset(str(s) for s in read_json(meta_path).get("skipped_sentences", []))
    return Treebank(name, language, words, kept, activations, skipped)


def pair_seed(seed: int, *names: str) -> int:
    from xlprobe.probing import attribute_seed

    return attribute_seed(seed, "\t".join(names))


def transfer_table(
    treebanks: Sequence[Treebank],
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    l2: float = L2,
    max_iter: int = MAX_ITER,
    max_train_words: int | None = None,
) -> pd.DataFrame:
    """Every attribute and ordered pair of treebanks of two languages sharing >= 2 kept values.

    A's readout (with its nulls) and B's own are fitted once per (treebank, attribute, class list)
    and reused across the pairs that share that class list, each on at most `max_train_words` of the
    treebank's train words (a seeded sample; the fit's cost grows with them, its accuracy barely).
    """
    readouts: dict[tuple[str, str, tuple[str, ...], int], Readout] = {}

    def readout(tb: Treebank, attribute: str, classes: tuple[str, ...], nulls: int) -> Readout:
        key = (tb.name, attribute, classes, nulls)
        if key not in readouts:
            X, y = tb.rows(attribute, "train", classes)
            fit_seed = pair_seed(seed, tb.name, attribute, *classes)
            if max_train_words and len(y) > max_train_words:
                chosen = np.sort(np.random.default_rng(fit_seed).choice(len(y), max_train_words, replace=False))
                X, y = X[chosen], y[chosen]
            readouts[key] = Readout.fit(X, y, len(classes), nulls, fit_seed, l2, max_iter)
        return readouts[key]

    rows = []
    for a, b in itertools.permutations(treebanks, 2):
        if a.language == b.language:
            continue
        for attribute in sorted(set(a.kept) & set(b.kept)):
            classes = tuple(sorted(set(a.kept[attribute]) & set(b.kept[attribute])))
            if len(classes) < 2:
                continue
            test_X, test_y = b.rows(attribute, "test", classes)
            scores = readout(a, attribute, classes, permutations).score(test_X, test_y)
            own = readout(b, attribute, classes, 0).score(test_X, test_y)["accuracy"]
            rows.append({
                "attribute": attribute, "treebank_a": a.name, "language_a": a.language,
                "treebank_b": b.name, "language_b": b.language, "classes": " ".join(classes),
                "train_rows": readouts[(a.name, attribute, classes, permutations)].rows, "test_rows": len(test_y),
                **scores, "own_accuracy": own,
                "normalized": normalized_score(scores["accuracy"], scores["majority_accuracy"], own),
            })
            log.info("%s %s -> %s: accuracy %.3f (majority %.3f, own %.3f, null mean %.3f, p %.3f)",
                     attribute, a.name, b.name, scores["accuracy"], scores["majority_accuracy"], own,
                     scores.get("null_mean", np.nan), scores.get("p_value", np.nan))
    return pd.DataFrame(rows, columns=COLUMNS)


def run_probe_transfer(
    inputs: Mapping[str, Mapping[str, str | os.PathLike]],
    languages: Mapping[str, str],
    output: str | os.PathLike,
    settings: Mapping[str, Any],
    seed: int,
    point: Mapping[str, Any],
    threads: int = 1,
) -> pd.DataFrame:
    """The workflow stage for one (model, step, layer): `inputs` maps each treebank to its words,
    attributes, activations and meta files; writes the TSV, led by `point` (xlprobe.identity: model,
    seed, step, layer), and its provenance sidecar."""
    torch.set_num_threads(threads)
    treebanks = [load_treebank(name, languages[name], *(files[key] for key in ("words", "attributes", "activations", "meta")))
                 for name, files in inputs.items()]
    table = transfer_table(treebanks, permutations=int(settings["permutations"]), seed=seed,
                           l2=float(settings["l2"]), max_iter=int(settings["max_iter"]),
                           max_train_words=int(settings["max_train_words"]))
    table = with_identity(table, point)
    write_json(sidecar_path(output), provenance(
        {"probe_transfer": dict(settings), "seed": seed}, point=dict(point),
        inputs={name: {key: str(path) for key, path in files.items()} for name, files in inputs.items()},
        threads=threads,
    ))
    write_tsv(output, table)
    return table


# ----------------------------------------------------------------------------- command line
def probe_transfer_cli(args: argparse.Namespace) -> int:
    """`xlprobe probe-transfer`: A's embeddings and labels -> B's, written as one JSON record."""
    from xlprobe.probing import _read_labels

    torch.set_num_threads(args.threads)

    def loaded(features, labels):
        X, names = np.load(features), _read_labels(labels)
        if X.ndim != 2 or X.shape[0] != len(names):
            raise SystemExit(f"{features}: shape {X.shape} does not match the {len(names)} labels of {labels}")
        if not np.isfinite(X).all():
            raise SystemExit(f"{features}: contains NaN or infinite values")
        return X, np.asarray(names)

    train, test = loaded(args.train, args.train_labels), loaded(args.test, args.test_labels)
    own = loaded(args.own_train, args.own_train_labels) if args.own_train else None
    dev = loaded(args.dev, args.dev_labels) if args.dev else None
    if train[0].shape[1] != test[0].shape[1]:
        raise SystemExit(f"{args.train} and {args.test} differ in width: {train[0].shape[1]} vs {test[0].shape[1]}")
    try:
        record = probe_transfer(train, test, own, dev, permutations=args.permutations, seed=args.seed,
                                l2=args.l2, max_iter=args.max_iter)
    except ValueError as error:
        raise SystemExit(f"{args.train_labels} and {args.test_labels}: {error}") from None
    files = {name: getattr(args, name) for name in ("train", "train_labels", "dev", "dev_labels", "test",
                                                    "test_labels", "own_train", "own_train_labels")}
    record["provenance"] = provenance(
        {"permutations": args.permutations, "seed": args.seed, "l2": args.l2, "max_iter": args.max_iter},
        inputs={k: v for k, v in files.items() if v},
    )
    write_json(args.out, record)
    print(f"accuracy {record['accuracy']:.3f}, majority class {record['majority_accuracy']:.3f}"
          + (f", null mean {record['null_mean']:.3f}, p {record['p_value']:.3f}" if "p_value" in record else ""))
    return 0
