"""Checkpoint checks: weight hashes and duplicates (xlprobe.weights), the LM loss and the suspect rule
(xlprobe.lm_loss), and their columns and warnings in the alignment table."""

from __future__ import annotations

import hashlib
import logging
import math

import pytest
import torch
from huggingface_hub.hf_api import RepoSibling
from results_layout import record_point

from xlprobe.alignment import read_table, write_alignment_table
from xlprobe.checks import duplicates, suspects
from xlprobe.io import write_json, write_tsv
from xlprobe.lm_loss import sample_sentences, sentence_losses
from xlprobe.overlap import overlap_table
from xlprobe.weights import hash_folder


# ----------------------------------------------------------------------------- the suspect rule
def test_suspect_rule_interior_last_and_first_steps():
    # interior: more than the margin above the lowest earlier loss
    assert set(suspects([(0, 9.0), (100, 5.0), (200, 7.5), (300, 4.0)], margin=1.0)) == {200}
    # a rise of less than the margin is not suspect, nor is a loss above a later one only
    assert set(suspects([(0, 9.0), (100, 5.0), (200, 5.9), (300, 4.0)], margin=1.0)) == set()
    assert set(suspects([(0, 9.0), (100, 5.0), (200, 6.5), (300, 6.0)], margin=1.0)) == {200}
    # the last step against the earlier ones
    assert set(suspects([(0, 9.0), (100, 5.0), ("final", 8.0)], margin=1.0)) == {"final"}
    # the first step is legitimately the highest; it is suspect only far above a uniform guess
    assert set(suspects([(0, 12.0), (100, 5.0), (200, 4.0)], margin=1.0)) == set()
    assert set(suspects([(0, 12.0), (100, 5.0), (200, 4.0)], margin=1.0, uniform=12.4)) == set()
    assert set(suspects([(0, 13.5), (100, 5.0), (200, 4.0)], margin=1.0, uniform=12.4)) == {0}
    # a step without a loss is skipped
    assert set(suspects([(0, 9.0), (100, 5.0), (200, math.nan), (300, 7.0), (400, 4.0)], margin=1.0)) == {300}
    # the margin is in nats: 1.5 above is suspect at 1.0, not at 2.0
    losses = [(0, 9.0), (100, 5.0), (200, 6.5), (300, 4.5)]
    assert set(suspects(losses, margin=1.0)) == {200} and set(suspects(losses, margin=2.0)) == set()


def test_two_neighbouring_broken_steps_are_both_suspect():
    # each is compared with the healthy steps before it, not with its broken neighbour
    losses = [(0, 6.2), (20, 5.1), (40, 9.0), (60, 9.3), (80, 4.6)]
    assert set(suspects(losses, margin=1.0)) == {40, 60}
    # the last two steps, and a broken first step with its broken neighbour
    assert set(suspects([(0, 6.2), (20, 5.1), (40, 4.9), (60, 8.0), (80, 8.2)], margin=1.0)) == {60, 80}
    assert set(suspects([(0, 20.0), (20, 21.0), (40, 5.0), (60, 4.8)], margin=1.0, uniform=6.2)) == {0, 20}
    # a healthy series, falling fast then slowly with noise below the margin, flags nothing
    assert suspects([(0, 6.3), (20, 5.2), (40, 5.4), (60, 4.9), (80, 5.3)], margin=1.0, uniform=6.2) == {}


def test_a_loss_that_is_not_finite_is_suspect_with_its_reason():
    flagged = suspects([(0, 6.0), (20, math.inf), (40, 4.0)], margin=1.0, uniform=6.2)
    assert flagged == {20: "LM loss not a finite number"}
    reason = suspects([(0, 6.0), (20, 5.0), (40, 7.25)], margin=1.0)[40]
    assert reason == "LM loss 7.250 nats, 2.25 above step 20's 5.000 (the lowest of the earlier steps)"


# ----------------------------------------------------------------------------- hashes
def test_folder_hashes_are_the_files_sha256_and_one_weight_format(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights A" * 1000)
    (tmp_path / "pytorch_model.bin").write_bytes(b"other format")
    (tmp_path / "config.json").write_text("{}")
    assert hash_folder(tmp_path) == {"model.safetensors": {
        "sha256": hashlib.sha256(b"weights A" * 1000).hexdigest(), "from": "file"}}
    (tmp_path / "model.safetensors").unlink()
    assert hash_folder(tmp_path) == {"pytorch_model.bin": {
        "sha256": hashlib.sha256(b"other format").hexdigest(), "from": "file"}}
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(ValueError, match=f"{tmp_path}: no weight files"):
        hash_folder(tmp_path)


def test_hashes_take_the_lfs_sha256_where_the_metadata_has_it(tmp_path):
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (tmp_path / name).write_bytes(name.encode())
    lfs = "ab" * 32
    siblings = [RepoSibling("model-00001-of-00002.safetensors", lfs={"sha256": lfs, "size": 1, "pointerSize": 1}),
                RepoSibling("model-00002-of-00002.safetensors", lfs=None), RepoSibling("config.json")]
    assert hash_folder(tmp_path, siblings) == {
        "model-00001-of-00002.safetensors": {"sha256": lfs, "from": "lfs"},
        "model-00002-of-00002.safetensors": {
            "sha256": hashlib.sha256(b"model-00002-of-00002.safetensors").hexdigest(), "from": "file"},
    }


def test_duplicates_name_the_first_earlier_step_of_the_same_model():
    a, b = {"m.safetensors": {"sha256": "a"}}, {"m.safetensors": {"sha256": "b"}}
    points = [("x", 1000, a), ("x", 2000, b), ("x", 3000, a), ("x", 4000, {"m.safetensors": {"sha256": "a", "from": "lfs"}}),
              ("y", 1000, a), ("y", 2000, None)]
    # same bytes whatever the source of the hash; another model's identical weights are not its duplicate
    assert duplicates(points) == {("x", 3000): 1000, ("x", 4000): 1000}


# ----------------------------------------------------------------------------- the loss
def test_sentence_losses_match_a_per_sentence_computation(tiny_bloom):
    model, tokenizer = tiny_bloom.model, tiny_bloom.tokenizer
    sentences = ["kata dora mesi", "a", "lunga frase con molte parole diverse qui e la", "dora"]
    total, tokens = sentence_losses(model, tokenizer, sentences, batch_size=3)
    expected_total, expected_tokens = 0.0, 0
    with torch.no_grad():
        for sentence in sentences:  # one at a time, no padding; targets shifted by hand
            ids = torch.tensor([[tokenizer.eos_token_id, *tokenizer(sentence, add_special_tokens=False)["input_ids"]]])
            logits = model(input_ids=ids).logits[0, :-1]
            expected_total -= torch.log_softmax(logits.double(), -1).gather(1, ids[0, 1:, None]).sum().item()
            expected_tokens += ids.shape[1] - 1
    assert tokens == expected_tokens
    assert total == pytest.approx(expected_total, rel=1e-4)


def test_the_sample_is_each_languages_first_sentences_once(demo_data):
    settings = {"pairs": [["xa", "xb"], ["xa", "xc"]], "files": {
        "xa": str(demo_data.parallel["xa"]), "xb": str(demo_data.parallel["xb"]), "xc": str(demo_data.parallel["xb"])}}
    sample = sample_sentences(settings, per_language=5)
    lines = {lang: demo_data.parallel[lang].read_text(encoding="utf-8").splitlines()[:5] for lang in ("xa", "xb")}
    assert list(sample) == ["xa", "xb", "xc"]
    assert sample["xa"] == lines["xa"] and sample["xb"] == lines["xb"] == sample["xc"]


# ----------------------------------------------------------------------------- the table
def write_point(root, model, step, loss, sha, **extra):
    path = root / f"overlap/{model}/{step}/layer2.tsv"
    selections = {"xa": {"Number": [0, 1, 2]}, "xb": {"Number": [1, 2, 3]}}
    write_tsv(path, overlap_table(selections, 16, k=3, languages={"xa": "xa", "xb": "xb"}, random_draws=5))
    record_point(path, "overlap")
    check = root / f"lm_loss/{model}/{step}.json"
    write_json(check, {"model": model, "step": str(step), "lm_loss": loss, "languages": {},
                       "weights": {"model.safetensors": {"sha256": sha, "from": "file"}}, **extra})
    return path, check


def test_alignment_flags_duplicates_and_suspects_and_warns(tmp_path, caplog):
    m = {"uniform_loss": 10.0}
    points = [("m", 0, 9.0, "s0", m), ("m", 1000, 5.0, "s1", m), ("m", 2000, 4.5, "s1", m), ("m", 3000, 8.0, "s3", m),
              ("m", 4000, 4.0, "s4", m), ("m", "final", 3.9, "s4", m),
              # n: a vocabulary whose uniform guess is 4.5 nats, and a forward pass that overflowed
              ("n", 1000, 6.0, "s1", {"uniform_loss": 4.5, "samples": {"parallel": {"lm_loss": 6.5}}}),
              ("n", 2000, None, "s2", {"uniform_loss": 4.5, "non_finite": ["xa"]})]
    written = [write_point(tmp_path, *point[:4], **point[4]) for point in points]
    with caplog.at_level(logging.WARNING, logger="xlprobe"):
        write_alignment_table([o for o, _ in written], [], [], tmp_path / "alignment.tsv",
                              tmp_path / "alignment_attributes.tsv", check_paths=[c for _, c in written])
    table = read_table(tmp_path / "alignment.tsv").set_index(["model", "step"])
    assert table["lm_loss"].tolist() == [9.0, 5.0, 4.5, 8.0, 4.0, 3.9, 6.0, math.inf]
    assert table["lm_loss_parallel"].fillna(-1).tolist() == [-1] * 6 + [6.5, -1]
    assert table["duplicate_of"].tolist() == ["", "", 1000, "", "", 4000, "", ""]
    assert table.index[table["suspect"]].tolist() == [("m", 3000), ("n", 1000), ("n", 2000)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("m: step 2000 holds the same weights as step 1000" in w for w in warnings), warnings
    assert any("m: step final holds the same weights as step 4000" in w for w in warnings), warnings
    suspect = [w for w in warnings if "suspect" in w]
    assert suspect == [
        ("m: step 3000 is suspect: LM loss 8.000 nats, 3.50 above step 2000's 4.500 (the lowest of the earlier "
         "steps) (margin 1.00 nats); a broken checkpoint?"),
        ("n: step 1000 is suspect: LM loss 6.000 nats, 1.50 above a uniform guess (ln of the output width, 4.500) "
         "(margin 1.00 nats); a broken checkpoint?"),
        "n: step 2000 is suspect: LM loss not a finite number (margin 1.00 nats); a broken checkpoint?",
    ], suspect
    # a missing record key is named with its file
    write_json(written[0][1], {"model": "m", "step": "0"})
    with pytest.raises(ValueError, match=r"lm_loss/m/0.json: missing keys \['lm_loss', 'weights'\]"):
        write_alignment_table([o for o, _ in written], [], [], tmp_path / "a.tsv", tmp_path / "b.tsv",
                              check_paths=[c for _, c in written])


def test_the_stage_records_both_losses_the_verdicts_sample_and_the_hashes(tiny_bloom, demo_data, tmp_path):
    from xlprobe.demo.synthetic import demo_treebank_file
    from xlprobe.io import read_json
    from xlprobe.lm_loss import run_lm_loss, write_sample

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "0").symlink_to(tiny_bloom.path)
    model = {"name": "tiny", "source": "local", "path": str(tmp_path / "ckpt" / "{step}")}
    treebanks = {lang: [demo_treebank_file(demo_data.ud_root, lang, split) for split in ("train", "dev", "test")]
                 for lang in demo_data.languages}
    similarity = {"pairs": [demo_data.languages], "files": {lang: str(path) for lang, path in demo_data.parallel.items()}}
    write_sample(tmp_path / "sample.json", treebanks, similarity, per_language=4, seed=0)
    write_sample(tmp_path / "bare.json", treebanks, None, per_language=4, seed=0)
    run_lm_loss(model, 0, tmp_path / "sample.json", {"batch_size": 3, "device": "cpu"}, tmp_path / "a.json")
    run_lm_loss(model, 0, tmp_path / "bare.json", {"batch_size": 3, "device": "cpu"}, tmp_path / "b.json")
    record, bare = read_json(tmp_path / "a.json"), read_json(tmp_path / "b.json")
    weights = tiny_bloom.path / "model.safetensors"
    assert record["weights"] == {"model.safetensors": {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                                                       "from": "file"}}
    samples = record["samples"]
    assert set(samples) == {"treebanks", "parallel"} and set(bare["samples"]) == {"treebanks"}
    for sample in samples.values():
        languages = sample["languages"]
        assert [languages[lang]["sentences"] for lang in demo_data.languages] == [4, 4]
        assert sample["lm_loss"] == pytest.approx(sum(languages[lang]["loss"] for lang in demo_data.languages) / 2)
    # the verdict reads the treebanks' loss, with or without parallel text
    assert record["lm_loss_sample"] == "treebanks" and record["lm_loss"] == samples["treebanks"]["lm_loss"]
    assert bare["lm_loss"] == record["lm_loss"] and bare["languages"] == record["languages"]
    # the treebanks' loss is that of the sample's sentences, computed independently
    sentences = read_json(tmp_path / "sample.json")["samples"]["treebanks"][demo_data.languages[0]]
    total, tokens = sentence_losses(tiny_bloom.model, tiny_bloom.tokenizer, sentences)
    assert record["languages"][demo_data.languages[0]]["loss"] == pytest.approx(total / tokens, rel=1e-5)
    # a random model's loss is about that of a uniform guess over its output width
    assert record["uniform_loss"] == pytest.approx(math.log(tiny_bloom.model.config.vocab_size))
    assert abs(record["lm_loss"] - record["uniform_loss"]) < 1.0
    assert record["provenance"]["checkpoint"]["path"] == str(tmp_path / "ckpt" / "0")
    assert (record["model"], record["seed"], record["step"]) == ("tiny", None, 0)  # the identity (xlprobe.identity)
    assert record["provenance"]["sample"] == str(tmp_path / "sample.json")


def test_the_treebank_sample_is_seeded_held_out_sentences_in_corpus_order(demo_data, tmp_path):
    from xlprobe.demo.synthetic import demo_treebank_file
    from xlprobe.lm_loss import treebank_sentences

    lang = demo_data.languages[0]
    files = [demo_treebank_file(demo_data.ud_root, lang, split) for split in ("train", "dev", "test")]
    test_file = demo_treebank_file(demo_data.ud_root, lang, "test")
    texts = [line.removeprefix("# text = ") for line in test_file.read_text(encoding="utf-8").splitlines()
             if line.startswith("# text = ")]
    sample = treebank_sentences({lang: files}, per_language=5, seed=0)[lang]
    # from the test file only, in its order, the same for the same seed, another for another seed
    assert len(sample) == 5 and sample == [t for t in texts if t in sample]
    assert [texts.index(t) for t in sample] == sorted(texts.index(t) for t in sample)
    assert treebank_sentences({lang: files}, 5, seed=0)[lang] == sample != treebank_sentences({lang: files}, 5, 1)[lang]
    assert treebank_sentences({lang: files}, 10**6, seed=0)[lang] == texts
    # a treebank without a test file: all its files; a sentence without `# text`: its surface tokens
    plain = tmp_path / "x-ud-train.conllu"
    plain.write_text("# sent_id = 1\n1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n1\tde\tde\tADP\t_\t_\t0\troot\t_\t_\n"
                     "2\tle\tle\tDET\t_\t_\t1\tdet\t_\t_\n3\tchat\tchat\tNOUN\t_\t_\t1\tobj\t_\t_\n\n",
                     encoding="utf-8")
    assert treebank_sentences({"x": [plain]}, 5, seed=0) == {"x": ["du chat"]}
    (tmp_path / "empty.conllu").write_text("")
    with pytest.raises(ValueError, match="language y: no sentences in its treebank files"):
        treebank_sentences({"y": [tmp_path / "empty.conllu"]}, 5, seed=0)
