"""Parallel-sentence similarity: reading aligned text, pooling, and the cosines against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xlprobe.similarity import parallel_sentences, parallel_similarity, run_similarity, sentence_vectors
from xlprobe.workflow_config import schema_defaults


@pytest.fixture(scope="module")
def tiny(tiny_bloom):
    return tiny_bloom.model, tiny_bloom.tokenizer, tiny_bloom.path


@pytest.fixture(scope="module")
def n_layer(tiny_bloom):
    return tiny_bloom.model.config.n_layer


def test_tatoeba_and_pud_pairs_are_aligned(shared_data):
    tatoeba = shared_data / "parallel" / "tatoeba"
    files = {"en-fr": [str(tatoeba / "tatoeba.fra-eng.eng"), str(tatoeba / "tatoeba.fra-eng.fra")]}
    en, fr = parallel_sentences(files, "en", "fr", max_pairs=5)
    assert fr[0] == (tatoeba / "tatoeba.fra-eng.fra").read_text(encoding="utf-8").splitlines()[0].strip()
    assert len(en) == len(fr) == 5
    pud = str(shared_data / "parallel" / "pud" / "pud_parallel.tsv")
    en, es = parallel_sentences({"en": pud, "es": pud}, "en", "es")
    assert len(en) == len(es) == 1000
    assert en[1].startswith("For those who follow social media transitions")
    assert es[1].startswith("Para los que sigan")


def test_bad_parallel_files_fail_clearly(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one\ntwo\n")
    b.write_text("uno\n")
    with pytest.raises(ValueError, match=r"a\.txt has 2 lines but .*b\.txt has 1"):
        parallel_sentences({"xa": str(a), "xb": str(b)}, "xa", "xb")
    with pytest.raises(ValueError, match="no parallel text for xa-xc"):
        parallel_sentences({"xa": str(a)}, "xa", "xc")
    with pytest.raises(ValueError, match="no column 'de'"):
        table = tmp_path / "t.tsv"
        table.write_text("en\tfr\nx\ty\n")
        parallel_sentences({"en-de": str(table)}, "en", "de")


def test_batched_vectors_equal_unbatched(tiny, n_layer, demo_data):
    model, tokenizer, _ = tiny
    language = demo_data.languages[1]
    sentences = demo_data.parallel[language].read_text(encoding="utf-8").splitlines()[:9]
    layers = [1, 2, n_layer + 1]
    one = sentence_vectors(model, tokenizer, sentences, layers, batch_size=1)
    side = tokenizer.padding_side
    try:
        for padding in ("left", "right"):
            tokenizer.padding_side = padding
            many = sentence_vectors(model, tokenizer, sentences, layers, batch_size=4)
            for pooling in ("last", "mean"):
                np.testing.assert_allclose(many[pooling], one[pooling], rtol=1e-4, atol=1e-5)
    finally:
        tokenizer.padding_side = side  # the model is shared by every test
    assert not np.allclose(one["last"], one["mean"])


def test_cosines_match_numpy(tiny, n_layer, demo_data):
    model, tokenizer, _ = tiny
    # Two pairs from the demo's aligned files: one per language file, and one [source, target] pair.
    xa, xb = demo_data.languages
    files = {"en": str(demo_data.parallel[xa]), "fr": str(demo_data.parallel[xb]),
             "en-es": [str(demo_data.parallel[xb]), str(demo_data.parallel[xa])]}
    table = parallel_similarity(model, tokenizer, files, [["en", "fr"], ["en", "es"]], max_pairs=6, batch_size=4)
    assert list(table.columns) == ["source", "target", "layer", "pooling", "cosine", "pairs",
                                   "retrieval", "retrieval_pairs", "retrieval_null", "retrieval_p"]
    assert len(table) == 2 * (n_layer + 1) * 2 and (table["pairs"] == 6).all()

    def states(sentence: str) -> list[np.ndarray]:
        ids = torch.tensor([tokenizer(sentence)["input_ids"]])
        with torch.no_grad():
            return [h[0].numpy() for h in model(ids, output_hidden_states=True).hidden_states]

    def cos(u: np.ndarray, v: np.ndarray) -> float:
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    for target, (left, right) in (("fr", (files["en"], files["fr"])), ("es", files["en-es"])):
        en = Path(left).read_text(encoding="utf-8").splitlines()[:6]
        xx = Path(right).read_text(encoding="utf-8").splitlines()[:6]
        pairs = [(states(a), states(b)) for a, b in zip(en, xx)]
        for layer in range(1, n_layer + 2):
            last = np.mean([cos(a[layer - 1][-1], b[layer - 1][-1]) for a, b in pairs])
            mean = np.mean([cos(a[layer - 1].mean(0), b[layer - 1].mean(0)) for a, b in pairs])
            got = table.set_index(["target", "layer", "pooling"])["cosine"]
            assert got[(target, layer, "last")] == pytest.approx(last, abs=1e-5)
            assert got[(target, layer, "mean")] == pytest.approx(mean, abs=1e-5)


def test_stage_writes_demo_style_files(tiny, tmp_path):
    _, _, model_dir = tiny
    demo = tmp_path / "demo"
    (demo / "parallel").mkdir(parents=True)
    (demo / "parallel" / "xa.txt").write_text("a b c\nd e\n\nf g h i\n")
    (demo / "parallel" / "xb.txt").write_text("c b a\ne d\nlost\ni h g f\n")
    (demo / "models" / "tiny").mkdir(parents=True)
    (demo / "models" / "tiny" / "7").symlink_to(model_dir)
    out = tmp_path / "similarity" / "tiny" / "7.tsv"
    settings = {**schema_defaults("similarity"), "pairs": [["xa", "xb"]], "max_pairs": 10, "layers": [1, 4],
                "device": "cpu"}
    run_similarity({"name": "tiny", "source": "demo", "steps": [7]}, 7, settings, out, demo_dir=demo)
    table = pd.read_csv(out, sep="\t")
    # The empty third line drops its pair; 3 pairs remain, two layers, two poolings.
    assert table["pairs"].tolist() == [3] * 4
    assert sorted(table["layer"].unique()) == [1, 4]
    assert table["cosine"].between(-1, 1).all()
    record = json.loads((tmp_path / "similarity" / "tiny" / "7.provenance.json").read_text())
    assert record["checkpoint"] == {"model": "tiny", "step": "7", "source": "demo",
                                    "path": str(demo / "models" / "tiny" / "7")}
    assert record["inputs"] == {lang: str(demo / "parallel" / f"{lang}.txt") for lang in ("xa", "xb")}
    assert record["config"]["similarity"] == settings
    # the identity leads the table (what the alignment files it under) and is recorded beside it
    assert list(table.columns[:3]) == ["model", "seed", "step"]
    assert set(zip(table["model"], table["seed"].isna(), table["step"])) == {("tiny", True, 7)}
    assert record["point"] == {"model": "tiny", "seed": None, "step": 7}
    with pytest.raises(ValueError, match=r"similarity\.layers: \[9\]"):
        run_similarity({"name": "tiny", "source": "demo", "steps": [7]}, 7, {**settings, "layers": [9]}, out,
                       demo_dir=demo)


def test_vectors_come_from_the_base_model_and_the_blocks_they_need(tiny, n_layer, demo_data):
    # The LM head (vocabulary x D; 250k x 1024 for BLOOM) never runs, nor blocks past the highest layer.
    model, tokenizer, _ = tiny
    sentences = demo_data.parallel[demo_data.languages[0]].read_text(encoding="utf-8").splitlines()[:5]
    ran = []
    hooks = [model.lm_head.register_forward_hook(lambda *_: ran.append("lm_head"))]
    hooks += [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(model.transformer.h)]
    try:
        vectors = sentence_vectors(model, tokenizer, sentences, [2], batch_size=8)
    finally:
        for hook in hooks:
            hook.remove()
    assert "lm_head" not in ran and set(ran) == {0, 1}, ran
    # The same numbers as the whole model's hidden states.
    full = sentence_vectors(model, tokenizer, sentences, [2, n_layer + 1], batch_size=8)
    np.testing.assert_allclose(vectors["last"][0], full["last"][0], rtol=1e-5, atol=1e-6)
