"""Cross-lingual probe transfer: planted readouts through the command and the stage's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xlprobe.cli import main
from xlprobe.probe_transfer import (
    fit_logistic,
    load_treebank,
    majority_accuracy,
    normalized_score,
    transfer_table,
)
from xlprobe.validity import Setting, control_languages, write_treebank

ATTRIBUTE = "Part of Speech"


def write_split(folder: Path, name: str, X: np.ndarray, y: np.ndarray) -> list[str]:
    np.save(folder / f"{name}.npy", X)
    (folder / f"{name}.txt").write_text("\n".join(f"v{c}" for c in y) + "\n")
    return [str(folder / f"{name}.npy"), str(folder / f"{name}.txt")]


def transfer_through_cli(tmp_path: Path, condition: str, seed: int = 0) -> dict:
    setting = Setting(width=64, shared_share=1.0, k=8, rows=1000, attributes=(ATTRIBUTE,), languages=("la", "lb"))
    languages = control_languages(condition, setting, np.random.default_rng(seed))
    (XA, la), (XB, lb) = languages["la"], languages["lb"]
    train = write_split(tmp_path, "a_train", XA[:800], la[ATTRIBUTE][:800])
    dev = write_split(tmp_path, "a_dev", XA[800:], la[ATTRIBUTE][800:])
    own = write_split(tmp_path, "b_train", XB[:800], lb[ATTRIBUTE][:800])
    test = write_split(tmp_path, "b_test", XB[800:], lb[ATTRIBUTE][800:])
    out = tmp_path / f"{condition}.json"
    assert main(["probe-transfer", "--train", train[0], "--train-labels", train[1], "--dev", dev[0],
                 "--dev-labels", dev[1], "--test", test[0], "--test-labels", test[1], "--own-train", own[0],
                 "--own-train-labels", own[1], "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    names = (tmp_path / "b_test.txt").read_text().split()
    assert record["majority_accuracy"] == pytest.approx(pd.Series(names).value_counts(normalize=True).max())
    return record


def test_a_shared_rotation_transfers_far_above_the_majority_class(tmp_path):
    record = transfer_through_cli(tmp_path, "shared_rotation")
    assert record["accuracy"] > record["majority_accuracy"] + 0.25
    assert record["p_value"] <= 0.05 and record["accuracy"] > record["null_q95"]
    assert record["p_value"] == max(record["p_permutation"], record["p_majority"])
    assert record["dev_accuracy"] > record["majority_accuracy"] + 0.25  # A's readout in A itself
    assert 0.6 < record["normalized"] < 1.3


def test_a_rotation_of_each_language_does_not_beat_the_majority_class(tmp_path):
    record = transfer_through_cli(tmp_path, "own_rotations")
    assert record["accuracy"] < record["majority_accuracy"] + 0.05
    assert record["p_value"] > 0.05
    assert record["own_accuracy"] > record["majority_accuracy"] + 0.25  # B's own readout exists


def test_classifiers_fitted_together_equal_each_fitted_alone():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 12))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int) + (X[:, 1] > 1)
    permuted = rng.permutation(y)
    weight, bias = fit_logistic(X, [y, permuted], 3)
    for i, labels in enumerate((y, permuted)):
        alone_weight, alone_bias = fit_logistic(X, [labels], 3)
        torch.testing.assert_close(weight[i], alone_weight[0], atol=1e-2, rtol=0)
        torch.testing.assert_close(bias[i], alone_bias[0], atol=1e-2, rtol=0)


def test_normalized_score_needs_b_own_readout_to_beat_its_majority_class():
    assert normalized_score(0.5, 0.4, 0.6) == pytest.approx(0.5)
    assert np.isnan(normalized_score(0.5, 0.4, 0.4 + 1e-7))  # the demo's step-500 pair: -1e6 otherwise
    assert np.isnan(normalized_score(0.5, 0.4, 0.39))


def test_majority_accuracy_is_the_most_frequent_share():
    assert majority_accuracy(np.array([0, 2, 2, 1, 2])) == pytest.approx(0.6)


def test_too_few_shared_classes_stop_naming_the_label_files(tmp_path):
    rng = np.random.default_rng(0)
    train = write_split(tmp_path, "a", rng.normal(size=(20, 4)), np.arange(20) % 2)  # v0, v1
    test = write_split(tmp_path, "b", rng.normal(size=(20, 4)), 1 + np.arange(20) % 2)  # v1, v2
    with pytest.raises(SystemExit, match=r"a\.txt and .*b\.txt: fewer than 2 classes shared"):
        main(["probe-transfer", "--train", train[0], "--train-labels", train[1], "--test", test[0],
              "--test-labels", test[1], "--out", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()


def test_table_covers_ordered_pairs_of_two_languages_over_shared_kept_values(tmp_path):
    setting = Setting(width=32, shared_share=1.0, k=4, rows=600, attributes=("Number", "Case"),
                      languages=("la_one", "lb_one", "lb_two"))
    rng = np.random.default_rng(1)
    treebanks = []
    for name, (X, labels) in control_languages("shared_neurons", setting, rng).items():
        paths = write_treebank(tmp_path / name, X, labels, rng)
        if name == "lb_two":  # Case keeps v0 and v3 only: shares two values with la_one
            table = pd.read_csv(paths["attributes"], sep="\t")
            table.loc[(table["attribute"] == "Case") & table["value"].isin(["v1", "v2"]), "kept"] = False
            table.to_csv(paths["attributes"], sep="\t", index=False)
        treebanks.append(load_treebank(name, name[:2], *paths.values()))
    table = transfer_table(treebanks, permutations=3, seed=0)
    pairs = set(zip(table["attribute"], table["treebank_a"], table["treebank_b"]))
    # Two treebanks of lb are never a pair; each cross-lingual pair both ways, per attribute.
    assert pairs == {(a, x, y) for a in ("Number", "Case") for x, y in
                     [("la_one", "lb_one"), ("lb_one", "la_one"), ("la_one", "lb_two"), ("lb_two", "la_one")]}
    case = table[(table["attribute"] == "Case") & (table["treebank_b"] == "lb_two")].iloc[0]
    assert case["classes"] == "v0 v3"
    words = pd.read_csv(tmp_path / "lb_two" / "words.tsv", sep="\t")
    test_words = words[(words["split"] == "test") & words["Case"].isin(["v0", "v3"])]
    assert case["test_rows"] == len(test_words)
    assert case["majority_accuracy"] == pytest.approx(test_words["Case"].value_counts(normalize=True).max())
    assert (table["permutations"] == 3).all() and table["p_value"].between(0.25, 1).all()
