"""Lemma-disjoint train/dev/test splits and the filter that decides which attribute values are probed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "dev", "test")


def check_fractions(fractions: Mapping[str, float], key: str = "words.split") -> dict[str, float]:
    """`{train, dev, test}` shares, each in (0, 1), summing to 1; ValueError naming `key` otherwise."""
    if set(fractions) != set(SPLITS):
        raise ValueError(f"config {key}: needs exactly the keys {list(SPLITS)}, got {sorted(fractions)}")
    shares = {split: float(fractions[split]) for split in SPLITS}
    if any(not 0 < share < 1 for share in shares.values()) or not math.isclose(sum(shares.values()), 1.0):
        raise ValueError(f"config {key}: shares must lie in (0, 1) and sum to 1, got {shares}")
    return shares


def lemma_split(lemmas: Iterable[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign every distinct lemma to one split.

    The distinct lemmas are sorted (so the result does not depend on file or token order), shuffled
    with `seed`, and cut into consecutive blocks of the given shares (rounded; test takes the rest).
    """
    shares = check_fractions(fractions)
    unique = sorted(set(lemmas))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train = round(shares["train"] * len(unique))
    n_dev = round(shares["dev"] * len(unique))
    assignment = {}
    for rank, index in enumerate(order):
        split = "train" if rank < n_train else "dev" if rank < n_train + n_dev else "test"
        assignment[unique[index]] = split
    return assignment


def split_tokens(lemmas: Sequence[str], fractions: Mapping[str, float], seed: int) -> list[str]:
    """The split of each token: every token follows its lemma, so no lemma crosses splits."""
    assignment = lemma_split(lemmas, fractions, seed)
    return [assignment[lemma] for lemma in lemmas]


def attribute_table(
    values: pd.DataFrame, splits: Sequence[str], min_count: int, attributes: Sequence[str] | None = None
) -> pd.DataFrame:
    """Token counts of every attribute value per split, and whether the value is probed.

    `values` has one column per attribute (value, or missing) and one row per token, `splits` the
    token's split. A value is kept if it has >= `min_count` tokens in every split, and only while its
    attribute keeps >= 2 values. Columns: attribute, value, train, dev, test, kept.
    """
    if len(values) != len(splits):
        raise ValueError(f"{len(values)} tokens but {len(splits)} split labels")
    split_series = pd.Series(list(splits), index=values.index, name="split")
    rows = []
    for attribute in attributes if attributes is not None else values.columns:
        if attribute not in values.columns:
            continue
        column = values[attribute]
        present = column.notna()
        if not present.any():
            continue
        counts = pd.crosstab(column[present], split_series[present]).reindex(
            columns=list(SPLITS), fill_value=0
        )
        passing = (counts >= min_count).all(axis=1)
        keep_attribute = int(passing.sum()) >= 2
        for value, row in counts.sort_index().iterrows():
            rows.append(
                {
                    "attribute": attribute,
                    "value": value,
                    **{split: int(row[split]) for split in SPLITS},
                    "kept": bool(passing[value] and keep_attribute),
                }
            )
    return pd.DataFrame(rows, columns=["attribute", "value", *SPLITS, "kept"])
