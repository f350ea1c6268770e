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
    # interior: above both neighbours by more than the margin
    assert suspects([(0, 9.0), (100, 5.0), (200, 7.5), (300, 4.0)], margin=1.0) == {200}
    # above one neighbour only, or by less than the margin: not suspect
    assert suspects([(0, 9.0), (100, 5.0), (200, 6.5), (300, 6.0)], margin=1.0) == set()
    assert suspects([(0, 9.0), (100, 5.0), (200, 5.9), (300, 4.0)], margin=1.0) == set()
    # the last step against its one neighbour; the first never (it is the highest by nature)
    assert suspects([(0, 9.0), (100, 5.0), ("final", 8.0)], margin=1.0) == {"final"}
    assert suspects([(0, 12.0), (100, 5.0), (200, 4.0)], margin=1.0) == set()
    # a step without a loss is skipped: its neighbours compare with each other
    assert suspects([(0, 9.0), (100, 5.0), (200, math.nan), (300, 7.0), (400, 4.0)], margin=1.0) == {300}
    # the margin is in nats: 1.5 above both is suspect at 1.0, not at 2.0
    losses = [(0, 9.0), (100, 5.0), (200, 6.5), (300, 4.5)]
    assert suspects(losses, margin=1.0) == {200} and suspects(losses, margin=2.0) == set()


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
def write_point(root, model, step, loss, sha):
    path = root / f"overlap/{model}/{step}/layer2.tsv"
    selections = {"xa": {"Number": [0, 1, 2]}, "xb": {"Number": [1, 2, 3]}}
    write_tsv(path, overlap_table(selections, 16, k=3, languages={"xa": "xa", "xb": "xb"}, random_draws=5))
    record_point(path, "overlap")
    check = root / f"lm_loss/{model}/{step}.json"
    write_json(check, {"model": model, "step": str(step), "lm_loss": loss, "languages": {},
                       "weights": {"model.safetensors": {"sha256": sha, "from": "file"}}})
    return path, check


def test_alignment_flags_duplicates_and_suspects_and_warns(tmp_path, caplog):
    points = [("m", 0, 9.0, "s0"), ("m", 1000, 5.0, "s1"), ("m", 2000, 4.5, "s1"), ("m", 3000, 8.0, "s3"),
              ("m", 4000, 4.0, "s4"), ("m", "final", 3.9, "s4"), ("n", 1000, 6.0, "s1")]
    written = [write_point(tmp_path, *point) for point in points]
    with caplog.at_level(logging.WARNING, logger="xlprobe"):
        write_alignment_table([o for o, _ in written], [], [], tmp_path / "alignment.tsv",
                              tmp_path / "alignment_attributes.tsv", check_paths=[c for _, c in written])
    table = read_table(tmp_path / "alignment.tsv").set_index(["model", "step"])
    assert table["lm_loss"].tolist() == [9.0, 5.0, 4.5, 8.0, 4.0, 3.9, 6.0]
    assert table["duplicate_of"].tolist() == ["", "", 1000, "", "", 4000, ""]
    assert table.index[table["suspect"]].tolist() == [("m", 3000)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("m: step 2000 holds the same weights as step 1000" in w for w in warnings), warnings
    assert any("m: step final holds the same weights as step 4000" in w for w in warnings), warnings
    suspect = [w for w in warnings if "suspect" in w]
    assert len(suspect) == 1 and "step 3000" in suspect[0] and "step 2000: 4.500" in suspect[0], suspect
    # a missing record key is named with its file
    write_json(written[0][1], {"model": "m", "step": "0"})
    with pytest.raises(ValueError, match=r"lm_loss/m/0.json: missing keys \['lm_loss', 'weights'\]"):
        write_alignment_table([o for o, _ in written], [], [], tmp_path / "a.tsv", tmp_path / "b.tsv",
                              check_paths=[c for _, c in written])


def test_the_stage_records_loss_and_hashes_and_without_text_the_hashes_alone(tiny_bloom, demo_data, tmp_path):
    from xlprobe.io import read_json
    from xlprobe.lm_loss import run_lm_loss
    from xlprobe.workflow_config import schema_defaults

    model = {"name": "tiny", "source": "local", "path": str(tiny_bloom.root / "{step}")}
    similarity = {"pairs": [["xa", "xb"]], "files": {lang: str(path) for lang, path in demo_data.parallel.items()}}
    checks = schema_defaults("checks")
    run_lm_loss(model, "model", similarity, {**checks, "lm_loss_sentences": 4}, tmp_path / "a.json")
    record = read_json(tmp_path / "a.json")
    weights = tiny_bloom.path / "model.safetensors"
    assert record["weights"] == {"model.safetensors": {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                                                       "from": "file"}}
    languages = record["languages"]
    assert [languages[lang]["sentences"] for lang in ("xa", "xb")] == [4, 4]
    assert record["lm_loss"] == pytest.approx((languages["xa"]["loss"] + languages["xb"]["loss"]) / 2)
    # a random model's loss is about that of a uniform guess over the vocabulary
    assert abs(record["lm_loss"] - math.log(len(tiny_bloom.tokenizer))) < 1.0
    assert record["provenance"]["checkpoint"]["path"] == str(tiny_bloom.path)
    run_lm_loss(model, "model", None, checks, tmp_path / "b.json")
    bare = read_json(tmp_path / "b.json")
    assert bare["lm_loss"] is None and bare["languages"] == {} and bare["weights"] == record["weights"]
