import collections
import random

import numpy as np
import pandas as pd
import pytest

from xlprobe.splits import attribute_table, check_fractions, lemma_split, split_tokens

SHARES = {"train": 0.8, "dev": 0.1, "test": 0.1}


def test_lemma_split_matches_an_independent_computation():
    lemmas = [f"l{i:03d}" for i in range(997)]
    assignment = lemma_split(reversed(lemmas), SHARES, seed=7)
    permuted = [sorted(lemmas)[i] for i in np.random.default_rng(7).permutation(997)]
    # round(0.8 * 997) = 798 train, round(0.1 * 997) = 100 dev, the rest (99) test
    expected = {lemma: "train" for lemma in permuted[:798]}
    expected |= {lemma: "dev" for lemma in permuted[798:898]}
    expected |= {lemma: "test" for lemma in permuted[898:]}
    assert assignment == expected


def test_tokens_follow_their_lemma_whatever_the_order():
    rng = random.Random(0)
    tokens = [f"lemma{rng.randrange(300)}" for _ in range(5000)]
    splits = split_tokens(tokens, SHARES, seed=3)
    by_lemma = collections.defaultdict(set)
    for lemma, split in zip(tokens, splits):
        by_lemma[lemma].add(split)
    assert all(len(s) == 1 for s in by_lemma.values())
    shuffled = tokens[:]
    rng.shuffle(shuffled)
    again = dict(zip(shuffled, split_tokens(shuffled, SHARES, seed=3)))
    assert again == dict(zip(tokens, splits))
    other_seed = dict(zip(tokens, split_tokens(tokens, SHARES, seed=4)))
    assert other_seed != dict(zip(tokens, splits))
    assert collections.Counter({lemma: s.pop() for lemma, s in by_lemma.items()}.values()) == {
        "train": 240,
        "dev": 30,
        "test": 30,
    }


@pytest.mark.parametrize(
    "shares, message",
    [
        ({"train": 0.8, "dev": 0.2}, "needs exactly the keys"),
        ({"train": 0.8, "dev": 0.1, "test": 0.2}, "sum to 1"),
        ({"train": 1.0, "dev": 0.0, "test": 0.0}, "sum to 1"),
    ],
)
def test_bad_shares_name_the_config_key(shares, message):
    with pytest.raises(ValueError, match=f"config words.split: .*{message}"):
        check_fractions(shares)


def test_attribute_table_counts_and_filter():
    rows, splits = [], []

    def add(n, split, **attributes):
        rows.extend([attributes] * n)
        splits.extend([split] * n)

    for split in ("train", "dev", "test"):
        add(25, split, Number="SG", Case="NOM")
        add(20, split, Number="PL", Case="ACC")
    add(30, "train", Number="DU")  # only in train: not kept
    add(19, "dev", Case="GEN")
    add(40, "train", Case="GEN")
    add(40, "test", Case="GEN")  # 19 in dev < 20: not kept
    add(50, "train", Tense="PST")
    add(50, "dev", Tense="PST")
    add(50, "test", Tense="PST")  # Tense keeps one value only: attribute dropped
    add(5, "test")  # a token without attributes
    table = attribute_table(pd.DataFrame(rows), splits, min_count=20, attributes=["Number", "Case", "Tense"])

    assert list(table.columns) == ["attribute", "value", "train", "dev", "test", "kept"]
    got = {(r.attribute, r.value): (r.train, r.dev, r.test, r.kept) for r in table.itertuples()}
    assert got == {
        ("Number", "DU"): (30, 0, 0, False),
        ("Number", "PL"): (20, 20, 20, True),
        ("Number", "SG"): (25, 25, 25, True),
        ("Case", "ACC"): (20, 20, 20, True),
        ("Case", "GEN"): (40, 19, 40, False),
        ("Case", "NOM"): (25, 25, 25, True),
        ("Tense", "PST"): (50, 50, 50, False),
    }
    assert list(table["attribute"].unique()) == ["Number", "Case", "Tense"]


def test_attribute_table_rejects_misaligned_splits():
    with pytest.raises(ValueError, match="3 tokens but 2 split labels"):
        attribute_table(pd.DataFrame({"Number": ["SG"] * 3}), ["train", "dev"], min_count=1)
