"""Zero-shot transfer: readers, the seqeval-style F1, methods, and both tasks end to end on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xlprobe.transfer import run_transfer
from xlprobe.transfer.data import (
    NLI_LABELS,
    UPOS,
    load_task,
    read_tagged_sentences,
    read_xnli_tsv,
    read_xtreme_pos,
)
from xlprobe.transfer.methods import load_classifier
from xlprobe.transfer.metrics import seqeval_chunks, seqeval_f1, tag_accuracy
from xlprobe.transfer.train import IGNORE, encode

FAST = {"method": "lora", "epochs": 1, "batch_size": 16, "lr": 1e-3, "max_length": 48, "device": "cpu"}



@pytest.fixture(scope="module")
def tiny_model(tiny_bloom) -> Path:
    return tiny_bloom.path


# ----------------------------------------------------------------------------- metrics
def test_seqeval_chunks_merge_runs_of_one_tag_and_close_after_s_tags():
    # "NOUN" reads as prefix N + type OUN: two NOUNs in a row are one chunk; SCONJ (prefix S) stands alone.
    assert seqeval_chunks([["NOUN", "NOUN", "VERB", "SCONJ", "SCONJ"]]) == {
        ("OUN", 0, 1), ("ERB", 2, 2), ("CONJ", 3, 3), ("CONJ", 4, 4),
    }
    # Sentences are laid end to end with an "O" between them: runs do not cross sentences.
    assert seqeval_chunks([["DET"], ["DET"]]) == {("ET", 0, 0), ("ET", 2, 2)}


def test_seqeval_f1_by_hand():
    gold = [["DET", "NOUN", "NOUN", "VERB"]]
    predicted = [["DET", "NOUN", "VERB", "VERB"]]
    # gold chunks: DET, NOUN NOUN, VERB; predicted: DET, NOUN, VERB VERB -> 1 hit of 3 each way.
    assert seqeval_f1(gold, predicted) == pytest.approx(1 / 3)
    assert tag_accuracy(gold, predicted) == pytest.approx(3 / 4)
    assert seqeval_f1(gold, gold) == 1.0
    assert seqeval_f1(gold, [["X", "X", "X", "X"]]) == 0.0
    with pytest.raises(ValueError, match="shape"):
        seqeval_f1(gold, [["DET"]])


# ----------------------------------------------------------------------------- readers
def test_readers_report_file_and_line(tmp_path):
    bad_pos = tmp_path / "pos.tsv"
    bad_pos.write_text("The\tDET\ncat\n")
    with pytest.raises(ValueError, match=r"pos\.tsv:2"):
        read_xtreme_pos(bad_pos)
    unknown = tmp_path / "tags.tsv"
    unknown.write_text("The\tDT\n")
    with pytest.raises(ValueError, match=r"tags\.tsv.*'DT'"):
        read_xtreme_pos(unknown)
    bad_nli = tmp_path / "nli.tsv"
    bad_nli.write_text("a\tb\tentailment\na\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"nli\.tsv:2"):
        read_xnli_tsv(bad_nli)


def test_xtreme_files_read_as_its_preprocessing_writes_them(tmp_path):
    """XTREME writes XNLI with Python's csv module (tab-delimited): a field holding a quote is quoted."""
    import csv

    rows = [['He said "hi" twice.', "He spoke.", "entailment"], ['"Quoted" start', "x\ty", "neutral"],
            ["Plain", "text", "contradiction"]]
    xnli = tmp_path / "train-en.tsv"
    with open(xnli, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows(rows)
    assert '"He said ""hi"" twice."' in xnli.read_text()  # the layout under test
    assert read_xnli_tsv(xnli) == [tuple(row) for row in rows]
    # its UD-POS test files carry words only: rejected, naming the file, line and the layout expected
    test = tmp_path / "test-ta.tsv"
    test.write_text("word\nother\n\n")
    with pytest.raises(ValueError, match=r"test-ta\.tsv:1: a word without a tag.*dev-<lang>\.tsv.*format: hub"):
        read_xtreme_pos(test)


def test_word_table_groups_sentences_in_word_order(tmp_path):
    table = tmp_path / "xa.tsv"
    pd.DataFrame({
        "sentence_id": ["s2", "s1", "s1", "s2"], "word_id": [1, 2, 1, 2],
        "form": ["b1", "a2", "a1", "b2"], "lemma": ["x"] * 4, "upos": ["NOUN", "VERB", "DET", ""],
        "split": ["train"] * 4,
    }).to_csv(table, sep="\t", index=False)
    assert read_tagged_sentences(table) == [(["b1", "b2"], ["NOUN", None]), (["a1", "a2"], ["DET", "VERB"])]
    pd.DataFrame({"sentence_id": ["s"], "form": ["x"]}).to_csv(table, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"xa\.tsv.*word_id"):
        read_tagged_sentences(table)


def test_source_dev_is_a_disjoint_seeded_tenth(tmp_path):
    tables = []
    for tb in ("xa", "xb"):
        rows = [{"sentence_id": f"{tb}{s}", "word_id": w, "form": f"w{s}_{w}", "upos": "NOUN", "split": "train"}
                for s in range(50) for w in (1, 2)]
        pd.DataFrame(rows).to_csv(tmp_path / f"{tb}.tsv", sep="\t", index=False)
        tables.append(tmp_path / f"{tb}.tsv")
    task = {"name": "pos", "type": "udpos", "format": "conllu", "source": "xa", "targets": ["xb"]}
    data = load_task(task, tables, seed=3)
    assert len(data.source_dev) == 5 and len(data.train) == 45 and len(data.targets["xb"]) == 50
    assert not {tuple(w) for w, _ in data.train} & {tuple(w) for w, _ in data.source_dev}
    assert load_task(task, tables, seed=3).source_dev == data.source_dev
    assert load_task(task, tables, seed=4).source_dev != data.source_dev
    with pytest.raises(ValueError, match=r"transfer\.tasks\.pos.*'xc'"):
        load_task({**task, "targets": ["xc"]}, tables)
    with pytest.raises(ValueError, match=r"transfer\.tasks\.pos\.format"):
        load_task({**task, "format": "tsv"}, tables)


def test_pos_labels_sit_on_first_subword(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    sentence = (["Unbelievably", "long", "words"], ["ADV", None, "NOUN"])
    enc = encode("udpos", tok, [sentence], UPOS, max_length=128)
    ids, labels = enc.input_ids[0], enc.labels[0]
    pieces = [tok(w, add_special_tokens=False)["input_ids"] for w in ["Unbelievably", " long", " words"]]
    assert ids == [i for p in pieces for i in p]
    expected = [UPOS.index("ADV")] + [IGNORE] * (len(pieces[0]) - 1) + [IGNORE] * len(pieces[1])
    expected += [UPOS.index("NOUN")] + [IGNORE] * (len(pieces[2]) - 1)
    assert labels == expected
    # Truncation drops whole words from scoring and counts them.
    short = encode("udpos", tok, [sentence], UPOS, max_length=len(pieces[0]))
    assert short.dropped_words == 1 and len(short.input_ids[0]) == len(pieces[0])


# ----------------------------------------------------------------------------- methods
def test_qlora_on_cpu_fails_clearly(tiny_model):
    with pytest.raises(RuntimeError, match="qlora.*CUDA"):
        load_classifier(str(tiny_model), "xnli", NLI_LABELS, "qlora", 3, torch.device("cpu"))


def test_methods_train_what_they_should(tiny_model):
    cpu = torch.device("cpu")
    frozen = load_classifier(str(tiny_model), "xnli", NLI_LABELS, "frozen", 3, cpu)
    assert {n for n, p in frozen.named_parameters() if p.requires_grad} == {"score.weight"}
    lora = load_classifier(str(tiny_model), "udpos", UPOS, "lora", 3, cpu)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("lora_A" in n and "query_key_value" in n for n in trainable)
    assert any("classifier" in n for n in trainable)
    assert not any("dense_h_to_4h" in n for n in trainable)
    with pytest.raises(ValueError, match="transfer.method"):
        load_classifier(str(tiny_model), "xnli", NLI_LABELS, "adapters", 3, cpu)


# ----------------------------------------------------------------------------- end to end
def _check_metrics(table: pd.DataFrame, source: str, targets: list[str], metrics: set[str],
                   identity: tuple[str, ...] = ()) -> None:
    assert list(table.columns) == [*identity, "language", "role", "metric", "value"]
    assert set(table["language"]) == {source, *targets}
    assert set(table.loc[table["language"] == source, "role"]) == {"source"}
    assert set(table.loc[table["language"] != source, "role"]) == {"target"}
    assert len(table) == (1 + len(targets)) * len(metrics)
    for language, group in table.groupby("language"):
        assert set(group["metric"]) == metrics
    assert table["value"].between(0, 1).all()


def test_xnli_end_to_end(tiny_model, shared_data, tmp_path):
    xnli = shared_data / "xnli-dev"
    task = {
        "name": "xnli", "type": "xnli", "format": "tsv", "source": "en", "targets": ["fr", "es"],
        "files": {"train": str(xnli / "dev-en.tsv"), "fr": str(xnli / "dev-fr.tsv"), "es": str(xnli / "dev-es.tsv")},
    }
    out = tmp_path / "xnli.tsv"
    settings = {**FAST, "max_train_examples": 300, "max_eval_examples": 200}
    table = run_transfer(tiny_model, task, settings, out, seed=0)
    written = pd.read_csv(out, sep="\t")
    pd.testing.assert_frame_equal(written, table)
    _check_metrics(written, "en", ["fr", "es"], {"accuracy"})
    details = json.loads(out.with_suffix(".json").read_text())
    assert details["examples"] == {"train": 300, "source_dev": 200, "fr": 200, "es": 200}
    assert details["best_update"] in [h["update"] for h in details["history"]]
    # The source row is the chosen update's dev score: selection saw source dev only.
    best = max(h["dev_accuracy"] for h in details["history"])
    assert written.loc[written["language"] == "en", "value"].item() == pytest.approx(best)
    assert details["provenance"]["config"]["task"]["name"] == "xnli"
    # A bare directory, not a config checkpoint: the record names the directory.
    assert details["provenance"]["checkpoint"]["path"] == str(tiny_model)


def test_udpos_end_to_end(tiny_model, shared_data, tmp_path):
    udpos = shared_data / "udpos"
    task = {
        "name": "pos", "type": "udpos", "format": "xtreme", "source": "en", "targets": ["fr", "pt"],
        "files": {"train": str(udpos / "train-en.tsv"), "dev": str(udpos / "dev-en.tsv"),
                  "fr": str(udpos / "dev-fr.tsv"), "pt": str(udpos / "dev-pt.tsv")},
    }
    out = tmp_path / "pos.tsv"
    settings = {**FAST, "max_train_examples": 200, "max_eval_examples": 100, "eval_interval": 5}
    table = run_transfer(tiny_model, task, settings, out, seed=1)
    _check_metrics(pd.read_csv(out, sep="\t"), "en", ["fr", "pt"], {"f1", "accuracy"})
    details = json.loads(out.with_suffix(".json").read_text())
    # 200 sentences / batch 16 = 13 updates; dev checked at 5, 10 and the epoch's end.
    assert [h["update"] for h in details["history"]] == [5, 10, 13]
    assert set(details["dropped_words"]) == {"train", "source_dev", "fr", "pt"}
    assert np.isfinite(table["value"]).all()


def test_workflow_stage_on_demo_layout_with_word_tables(tiny_model, demo_data, tmp_path):
    """transfer_checkpoint: a demo checkpoint found through xlprobe.checkpoints, conllu word tables."""
    from xlprobe.demo.synthetic import demo_treebank_folder
    from xlprobe.transfer import transfer_checkpoint
    from xlprobe.wordtable import build_word_table, read_word_table

    demo = tmp_path / "demo"
    (demo / "models" / "tiny").mkdir(parents=True)
    (demo / "models" / "tiny" / "50").symlink_to(tiny_model)
    tables = []
    for language in demo_data.languages:  # the generator's treebanks, as the workflow builds them
        tables.append(tmp_path / "words" / f"{language}.tsv")
        build_word_table(
            [demo_data.ud_root / demo_treebank_folder(language)], tables[-1],
            tmp_path / "words" / f"{language}.attributes.tsv", treebank={"id": language, "language": language},
            words={"split": {"train": 0.8, "dev": 0.1, "test": 0.1}, "min_count": 1}, seed=0,
        )
    source, target = demo_data.languages
    task = {"name": "pos", "type": "udpos", "format": "conllu", "source": source, "targets": [target]}
    out = tmp_path / "transfer" / "tiny" / "50" / "pos.tsv"
    model = {"name": "tiny", "source": "demo", "steps": [50]}
    settings = {**FAST, "method": "frozen", "lr": 1e-2}
    transfer_checkpoint(model, 50, task, settings, out, data_files=tables, seed=0, demo_dir=demo)
    # a config model's table leads with its identity (xlprobe.identity), what the alignment files it under
    written = pd.read_csv(out, sep="\t")
    _check_metrics(written, source, [target], {"f1", "accuracy"}, identity=("model", "seed", "step", "task"))
    assert set(zip(written["model"], written["seed"].isna(), written["step"], written["task"])) == {("tiny", True, 50, "pos")}
    details = json.loads(out.with_suffix(".json").read_text())
    # Every sentence of the source table but a held-out 10% trains; the target is scored whole.
    n_source, n_target = (read_word_table(t)["sentence_id"].nunique() for t in tables)
    held_out = round(0.1 * n_source)
    assert details["examples"] == {"train": n_source - held_out, "source_dev": held_out, target: n_target}
    assert details["provenance"]["config"]["transfer"]["method"] == "frozen"
    assert details["provenance"]["point"] == {"model": "tiny", "seed": None, "step": 50, "task": "pos"}
    assert details["provenance"]["checkpoint"] == {"model": "tiny", "step": "50", "source": "demo",
                                                   "path": str(demo / "models" / "tiny" / "50")}


def test_word_table_reader_orders_words_numerically_and_skips_multiword_tags(tmp_path):
    from xlprobe.transfer.data import read_tagged_sentences as read_tagged

    rows = ["sentence_id\tword_id\tform\tlemma\tupos\ttags\tsplit"]
    forms = [f"w{i}" for i in range(1, 12)]
    for i, form in reversed(list(enumerate(forms, 1))):
        rows.append(f"0\t{i}\t{form}\t{form}\tNOUN\t_\ttrain")
    rows.append("0\t12-13\tdu\tde+le\tADP+DET\t_\ttrain")
    path = tmp_path / "words.tsv"
    path.write_text("\n".join(rows) + "\n")
    [(words, tags)] = read_tagged(path)
    assert words == [*forms, "du"]
    assert tags == ["NOUN"] * 11 + [None]
