"""Probing runs: the per-treebank runner on a fake word table, and the select-neurons command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xlprobe.cli import main
from xlprobe.io import write_json, write_npy, write_tsv
from xlprobe.probing import attribute_seed, probe_treebank
from xlprobe.workflow_config import schema_defaults

DIM = 12
POS_NEURON, NUMBER_NEURON = 3, 7
PROBE = {
    **schema_defaults("probe"),
    "k": 4,
    "max_epochs": 25,
    "patience": 5,
    "criterion": "mi",
    "greedy": "vectorized",
    "restore_best": True,
}
CHECKPOINT = {"model": "m", "step": "800", "source": "hub", "repo": "org/m", "revision": "step800", "commit": "c" * 40}



@pytest.fixture()
def treebank(tmp_path):
    """A word table whose Part of Speech lives in neuron 3 and Number in neuron 7 of the activations."""
    rng = np.random.default_rng(0)
    n = 900
    pos = rng.choice(["N", "V", "ADJ"], n)
    number = np.where(pos == "N", rng.choice(["SG", "PL"], n), "")
    split = rng.choice(["train", "dev", "test"], n, p=[0.7, 0.15, 0.15])
    words = pd.DataFrame(
        {
            "sentence_id": [f"s{i // 10}" for i in range(n)],
            "word_id": [str(i % 10 + 1) for i in range(n)],
            "form": [f"w{i}" for i in range(n)],
            "lemma": [f"l{i}" for i in range(n)],
            "upos": pos,
            "tags": "",
            "split": split,
            "Part of Speech": pos,
            "Number": number,
            "Tense": np.where(pos == "V", "PRS", ""),
        }
    )
    acts = rng.normal(size=(n, DIM))
    acts[:, POS_NEURON] += 3.0 * pd.Series(pos).map({"N": -1, "V": 0, "ADJ": 1}).to_numpy()
    acts[:, NUMBER_NEURON] += 3.0 * (number == "PL")
    skipped = ["s0", "s5"]
    acts[words["sentence_id"].isin(skipped)] = 0.0

    rows = []
    for attribute, values in (
        ("Part of Speech", ["N", "V", "ADJ"]),
        ("Number", ["SG", "PL"]),
        ("Tense", ["PRS"]),
    ):
        for value in values:
            counts = [
                int(((words[attribute] == value) & (split == s)).sum()) for s in ("train", "dev", "test")
            ]
            # Tense has a single value, so it is not kept, as the word-table stage would decide.
            rows.append([attribute, value, *counts, attribute != "Tense"])
    attributes = pd.DataFrame(rows, columns=["attribute", "value", "train", "dev", "test", "kept"])

    paths = {name: tmp_path / name for name in ("words.tsv", "attributes.tsv", "layer4.npy", "meta.json")}
    write_tsv(paths["words.tsv"], words)
    write_tsv(paths["attributes.tsv"], attributes)
    write_npy(paths["layer4.npy"], acts.astype(np.float16))
    write_json(paths["meta.json"], {"rows": n, "width": DIM, "skipped_sentences": skipped,
                                    "provenance": {"checkpoint": CHECKPOINT, "libraries": {}}})
    return paths, words, skipped


def run(paths, out, **kwargs):
    return probe_treebank(
        paths["words.tsv"],
        paths["attributes.tsv"],
        paths["layer4.npy"],
        paths["meta.json"],
        out,
        probe_config=kwargs.pop("probe_config", PROBE),
        seed=kwargs.pop("seed", 0),
        progress=False,
        **kwargs,
    )


def test_runner_probes_every_kept_attribute(treebank, tmp_path):
    paths, words, skipped = treebank
    out = tmp_path / "probe.json"
    result = run(paths, out, labels={"model": "m", "step": "800", "layer": 4, "treebank": "xa"})
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["dimension"] == DIM and result["k"] == 4
    assert (result["model"], result["layer"], result["treebank"]) == ("m", 4, "xa")
    assert "provenance" in result and result["provenance"]["config"]["probe"] == PROBE
    assert result["provenance"]["checkpoint"] == CHECKPOINT  # from the activations' meta.json
    assert set(result["attributes"]) == {"Part of Speech", "Number"}  # Tense keeps one value only

    usable = words[~words["sentence_id"].isin(skipped)]
    for attribute, planted in (("Part of Speech", POS_NEURON), ("Number", NUMBER_NEURON)):
        record = result["attributes"][attribute]
        for split in ("train", "dev", "test"):
            expected = usable[usable["split"] == split][attribute].value_counts()
            assert record["counts"][split] == {c: int(expected.get(c, 0)) for c in record["classes"]}
        assert record["selected"][0] == planted
        assert len(record["selected"]) == len(record["test_mi"]) == len(record["dev_score"]) == 4
        assert record["dev_score"] == record["dev_mi"]
        assert record["test_mi"][0] > 0.1  # few epochs: informative, far from converged
        family = record["mask_family"]
        assert set(family) == {"expected_neurons", "dev_mi", "dev_accuracy", "test_mi", "test_accuracy"}
        assert 0 < family["expected_neurons"] < DIM and 0 < family["test_accuracy"] <= 1
        assert family["test_mi"] < 1
        assert 1 <= record["best_epoch"] <= record["epochs"] <= PROBE["max_epochs"]
        assert record["seed"] == attribute_seed(0, attribute)


def test_runner_is_deterministic_and_seeded_per_attribute(treebank, tmp_path):
    paths, _, _ = treebank
    first = run(paths, tmp_path / "a.json")["attributes"]
    second = run(paths, tmp_path / "b.json")["attributes"]
    for attribute in first:
        for key in ("selected", "dev_score", "test_mi", "epochs", "mask_family"):
            assert first[attribute][key] == second[attribute][key]
    assert attribute_seed(0, "Number") != attribute_seed(0, "Part of Speech")
    assert attribute_seed(0, "Number") != attribute_seed(1, "Number")
    assert attribute_seed(0, "Number") == attribute_seed(0, "Number")


def test_runner_names_bad_inputs(treebank, tmp_path):
    paths, words, _ = treebank
    write_npy(paths["layer4.npy"], np.zeros((len(words) - 1, DIM), dtype=np.float16))
    with pytest.raises(ValueError, match=r"layer4\.npy.*does not match"):
        run(paths, tmp_path / "x.json")

    write_npy(paths["layer4.npy"], np.zeros((len(words), DIM), dtype=np.float16))
    table = pd.read_csv(paths["attributes.tsv"], sep="\t", dtype={"kept": object})
    table.loc[2, "kept"] = "maybe"
    write_tsv(paths["attributes.tsv"], table)
    with pytest.raises(ValueError, match=r"attributes\.tsv, line 4: 'kept'"):
        run(paths, tmp_path / "x.json")

    table.loc[2, "kept"] = True
    table.loc[:, "attribute"] = table["attribute"].replace("Number", "Case")
    write_tsv(paths["attributes.tsv"], table)
    with pytest.raises(ValueError, match="'Case' has no column"):
        run(paths, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- command line
@pytest.fixture()
def embeddings(tmp_path):
    rng = np.random.default_rng(1)
    files = {}
    for split, n in (("train", 400), ("dev", 150), ("test", 150)):
        y = rng.choice(["a", "b", "c"], n)
        X = rng.normal(size=(n, 10)).astype(np.float32)
        X[:, 6] += 3.0 * (y == "b") - 3.0 * (y == "c")
        np.save(tmp_path / f"{split}.npy", X)
        (tmp_path / f"{split}.txt").write_text("\n".join(y) + "\n")
        files[split] = (tmp_path / f"{split}.npy", tmp_path / f"{split}.txt")
    return files


def cli_args(files, out, *extra):
    args = ["select-neurons"]
    for split, (features, labels) in files.items():
        args += [f"--{split}", str(features), f"--{split}-labels", str(labels)]
    return args + ["--k", "3", "--max-epochs", "20", "--patience", "5", "--quiet", "--out", str(out), *extra]


def test_select_neurons_command_end_to_end(embeddings, tmp_path):
    assert main(cli_args(embeddings, tmp_path / "vec.json")) == 0
    assert main(cli_args(embeddings, tmp_path / "loop.json", "--greedy", "loop")) == 0
    fast, slow = (json.loads((tmp_path / name).read_text()) for name in ("vec.json", "loop.json"))
    assert fast["selected"][0] == 6
    assert fast["selected"] == slow["selected"] and len(fast["selected"]) == 3
    assert len(fast["dev_score"]) == len(fast["test_mi"]) == len(fast["test_accuracy"]) == 3
    assert fast["classes"] == ["a", "b", "c"]
    assert sum(fast["counts"]["dev"].values()) == 150
    assert fast["provenance"]["config"]["k"] == 3


def test_select_neurons_command_names_bad_labels(embeddings, tmp_path):
    embeddings["dev"][1].write_text("a\nb\nzz\n" + "a\n" * 147)
    with pytest.raises(SystemExit, match=r"dev\.txt, line 3: class 'zz'"):
        main(cli_args(embeddings, tmp_path / "out.json"))
    embeddings["dev"][1].write_text("a\n" * 149)
    with pytest.raises(SystemExit, match=r"dev\.npy: shape \(150, 10\) does not match the 149 labels"):
        main(cli_args(embeddings, tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()
