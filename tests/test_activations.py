import copy
import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from xlprobe.activations import (
    dump_activations,
    dump_word_activations,
    encode,
    mlp_width,
    sentences_from_table,
    word_vectors,
)

STEMS = ["kat", "doramil", "sup", "renutavi", "lor", "bikofen", "gur", "holjap", "x", "zyqwv"]


@pytest.fixture(scope="module")
def tiny(tiny_bloom):
    """The shared tiny BLOOM and its tokenizer, and a shuffled word table of sentences of many lengths."""
    rng = random.Random(0)
    rows = []
    for s in range(23):
        for w in range(rng.randint(1, 14)):
            rows.append({"sentence_id": f"s{s}", "word_id": w + 1, "form": rng.choice(STEMS) + rng.choice(["a", "es", ""])})
    # Rows out of order: the dump must follow the table's row order, not the sentence order.
    words = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return tiny_bloom.root, tiny_bloom.tokenizer, tiny_bloom.model, words


def one_at_a_time(model, tokenizer, words, layers, pooling):
    """Reference: every sentence alone, no padding and no mask; {layer: vectors in word table row order}."""
    out = {layer: np.zeros((len(words), model.config.hidden_size), dtype=np.float32) for layer in layers}
    for sentence in sentences_from_table(words):
        forms = sentence.forms
        if pooling == "paper":
            pieces = [tokenizer(form, add_special_tokens=False)["input_ids"] for form in forms]
            ids = [t for p in pieces for t in p]
            owner = [[i] for i, p in enumerate(pieces) for _ in p]
        else:
            text = " ".join(forms)
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = enc["input_ids"]
            starts = np.cumsum([0] + [len(f) + 1 for f in forms[:-1]])
            owner = [[i for i, st in enumerate(starts) if a < st + len(forms[i]) and b > st]
                     for a, b in enc["offset_mapping"]]
        with torch.no_grad():
            hidden_states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        for i, row in enumerate(sentence.rows):
            mine = [t for t, words_of_t in enumerate(owner) if i in words_of_t]
            for layer in layers:
                out[layer][row] = hidden_states[layer - 1][0][mine].mean(0).numpy()
    return out


def batched(model, tokenizer, words, layers, pooling, batch_size):
    sentences = sentences_from_table(words)
    encoded = encode(tokenizer, sentences, pooling)
    out = {layer: np.zeros((len(words), model.config.hidden_size), dtype=np.float32) for layer in layers}
    lengths = set()
    for batch, pooled in word_vectors(model, encoded, layers, batch_size, progress=False):
        rows = np.concatenate([sentences[i].rows for i in batch])
        lengths.update(len(encoded[i].ids) for i in batch)
        for layer in layers:
            out[layer][rows] = pooled[layer]
    return out, lengths


@pytest.mark.parametrize("pooling", ["paper", "natural"])
def test_batched_equals_one_sentence_at_a_time(tiny, pooling):
    _, tokenizer, model, words = tiny
    out, lengths = batched(model, tokenizer, words, [1, 2, 4], pooling, batch_size=5)
    assert len(lengths) > 5  # padding really happens
    reference = one_at_a_time(model, tokenizer, words, [1, 2, 4], pooling)
    for layer in (1, 2, 4):
        error = np.abs(out[layer] - reference[layer]).max() / np.abs(reference[layer]).max()
        assert error < 1e-4, (layer, error)


def test_paper_and_natural_pooling_differ_as_expected(tiny):
    _, tokenizer, model, words = tiny
    sentences = sentences_from_table(words)
    paper = encode(tokenizer, sentences, "paper")
    natural = encode(tokenizer, sentences, "natural")
    long = next(i for i, s in enumerate(sentences) if len(s.forms) > 3)
    forms = sentences[long].forms
    assert list(paper[long].ids) == [t for f in forms for t in tokenizer(f, add_special_tokens=False)["input_ids"]]
    assert list(natural[long].ids) == tokenizer(" ".join(forms), add_special_tokens=False)["input_ids"]
    # Layer 1 is context free: a word's vectors agree exactly where its subwords agree. The first
    # word (no space before it) is the same in both modes; a later word seen with its leading
    # space ("Ġ...") in natural pooling differs.
    paper_vectors, _ = batched(model, tokenizer, words, [1], "paper", 8)
    natural_vectors, _ = batched(model, tokenizer, words, [1], "natural", 8)
    differ = 0
    for sentence, p, n in zip(sentences, paper, natural):
        for w, row in enumerate(sentence.rows):
            same = list(p.ids[p.token[p.word == w]]) == list(n.ids[n.token[n.word == w]])
            close = np.allclose(paper_vectors[1][row], natural_vectors[1][row], rtol=1e-5, atol=1e-6)
            assert same == close, (sentence.forms, w)
            differ += not same
        assert list(p.ids[p.token[p.word == 0]]) == list(n.ids[n.token[n.word == 0]])
    assert differ > len(words) // 3


def test_layer_convention(tiny):
    """Layer 1 = embedding output (after BLOOM's embedding LayerNorm); layer 2 = output of block 0."""
    _, tokenizer, model, words = tiny
    sentences = sentences_from_table(words)
    encoded = encode(tokenizer, sentences, "paper")
    vectors, _ = batched(model, tokenizer, words, [1, 2], "paper", 4)
    body = model.transformer
    for sentence, enc in zip(sentences, encoded):
        ids = torch.tensor(enc.ids)
        with torch.no_grad():
            embedded = body.word_embeddings_layernorm(body.word_embeddings(ids))
        for w, row in enumerate(sentence.rows):
            np.testing.assert_allclose(vectors[1][row], embedded[enc.token[enc.word == w]].mean(0).numpy(),
                                       rtol=1e-5, atol=1e-5)
    captured = {}
    hook = body.h[0].register_forward_hook(lambda module, args, output: captured.update(out=output))
    sentence, enc = sentences[0], encoded[0]
    with torch.no_grad():
        model(input_ids=torch.from_numpy(enc.ids)[None])
    hook.remove()
    block0 = captured["out"][0] if isinstance(captured["out"], tuple) else captured["out"]
    for w, row in enumerate(sentence.rows):
        np.testing.assert_allclose(vectors[2][row], block0[0][enc.token[enc.word == w]].mean(0).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_dump_files_row_aligned_float16_and_skips_long_sentences(tiny, tmp_path):
    _, tokenizer, model, words = tiny
    sentences = sentences_from_table(words)
    lengths = {s.id: len(e.ids) for s, e in zip(sentences, encode(tokenizer, sentences, "paper"))}
    limit = sorted(lengths.values())[-3]  # the longest sentences (>= limit) are skipped
    skipped = {sid for sid, n in lengths.items() if n >= limit}
    paths = {2: tmp_path / "layer2.npy", 4: tmp_path / "layer4.npy"}
    meta = dump_word_activations(model, tokenizer, words, paths, pooling="paper", batch_size=4,
                                 max_subwords=limit, progress=False)
    assert set(meta["skipped_sentences"]) == skipped and skipped
    assert (meta["rows"], meta["width"], meta["layers"], meta["dtype"]) == (len(words), 32, [2, 4], "float16")
    skipped_rows = words["sentence_id"].isin(skipped).to_numpy()
    references = one_at_a_time(model, tokenizer, words, list(paths), "paper")
    for layer, path in paths.items():
        array = np.load(path)
        assert array.dtype == np.float16 and array.shape == (len(words), 32)
        assert np.isfinite(array).all()
        assert not array[skipped_rows].any()
        assert (np.abs(array[~skipped_rows]).sum(1) > 0).all()
        np.testing.assert_allclose(array[~skipped_rows].astype(np.float32), references[layer][~skipped_rows],
                                   rtol=2e-3, atol=2e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer2.npy", "layer4.npy"]  # no temporary files


def test_non_finite_activations_fail_and_leave_no_file(tiny, tmp_path):
    _, tokenizer, model, words = tiny
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.transformer.h[1].input_layernorm.weight[0] = float("nan")
    with pytest.raises(FloatingPointError, match="layer 3: NaN or inf"):
        dump_word_activations(broken, tokenizer, words, {3: tmp_path / "layer3.npy"}, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_fails_clearly(tiny, tmp_path):
    _, tokenizer, model, words = tiny
    with pytest.raises(ValueError, match="words.tsv: missing column.*form"):
        sentences_from_table(words.drop(columns="form"), "words.tsv")
    empty = words.copy()
    empty.loc[3, "form"] = None
    with pytest.raises(ValueError, match="words.tsv: empty form in data row 4"):
        sentences_from_table(empty, "words.tsv")
    with pytest.raises(ValueError, match=r"activations.layers: \[5\] out of range; this model has layers 1..4"):
        dump_word_activations(model, tokenizer, words, {5: tmp_path / "l.npy"}, progress=False)
    with pytest.raises(ValueError, match="activations.pooling: 'mean'"):
        dump_word_activations(model, tokenizer, words, {2: tmp_path / "l.npy"}, pooling="mean", progress=False)
    # Layer 4 is the residual stream's last (3 blocks + embeddings) but there is no fourth MLP.
    with pytest.raises(ValueError, match=r"activations.layers: \[4\] out of range; this model has layers 1..3 "
                                         r"\(activations.site mlp"):
        dump_word_activations(model, tokenizer, words, {4: tmp_path / "l.npy"}, site="mlp", progress=False)
    with pytest.raises(ValueError, match="activations.site: 'attention' is not one of residual, mlp"):
        dump_word_activations(model, tokenizer, words, {2: tmp_path / "l.npy"}, site="attention", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_multiword_token_ids_order_words(tiny):
    words = pd.DataFrame({"sentence_id": ["a", "a", "a", "b"], "word_id": ["3", "1-2", "4", "1"],
                          "form": ["c", "ab", "d", "z"]})
    sentences = sentences_from_table(words)
    assert [s.forms for s in sentences] == [["ab", "c", "d"], ["z"]]
    assert list(sentences[0].rows) == [1, 0, 2]


def test_rule_entry_point_with_a_demo_checkpoint(tiny, tmp_path):
    _, tokenizer, model, words = tiny
    checkpoint = tmp_path / "demo" / "models" / "tiny" / "0"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    words_path = tmp_path / "words.tsv"
    words.to_csv(words_path, sep="\t", index=False)
    out = tmp_path / "activations" / "tiny" / "0" / "xa"
    meta = dump_activations(
        words_path, {4: out / "layer4.npy"}, out / "meta.json",
        model={"name": "tiny", "step": "0", "source": "demo", "steps": [0]},
        activations={"layers": [4], "site": "residual", "pooling": "natural", "batch_size": 8, "dtype": "auto", "device": "cpu"},
        max_subwords=2048, demo_dir=tmp_path / "demo",
    )
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk["pooling"] == "natural" and on_disk["layers"] == [4] and on_disk["skipped_sentences"] == []
    assert on_disk["provenance"]["config"]["activations"]["batch_size"] == 8
    assert on_disk["provenance"]["checkpoint"] == {"model": "tiny", "step": "0", "source": "demo", "path": str(checkpoint)}
    assert meta["compute_dtype"] == "float32"
    reference = one_at_a_time(model, tokenizer, words, [4], "natural")[4]
    np.testing.assert_allclose(np.load(out / "layer4.npy").astype(np.float32), reference, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("layers", [[1], [2], [1, 3], [4]])
def test_forward_stops_after_the_blocks_the_layers_need(tiny, layers):
    _, tokenizer, model, words = tiny
    blocks = model.transformer.h
    ran = []
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(blocks)]
    try:
        out, _ = batched(model, tokenizer, words, layers, "natural", 8)
    finally:
        for hook in hooks:
            hook.remove()
    # layer L is the input of block L-1; one block more runs so that the final norm never applies
    assert max(ran) == min(max(layers), len(blocks)) - 1
    assert model.transformer.h is blocks
    reference = one_at_a_time(model, tokenizer, words, layers, "natural")
    for layer in layers:
        np.testing.assert_allclose(out[layer], reference[layer], rtol=1e-4, atol=1e-5)


def test_forward_stops_early_in_other_model_families_too(tiny):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    _, tokenizer, _, words = tiny
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    model = GPTNeoXForCausalLM(config).eval()
    ran = []
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(model.gpt_neox.layers)]
    out, _ = batched(model, tokenizer, words, [2], "natural", 8)
    for hook in hooks:
        hook.remove()
    assert max(ran) == 1
    reference = one_at_a_time(model, tokenizer, words, [2], "natural")
    np.testing.assert_allclose(out[2], reference[2], rtol=1e-4, atol=1e-5)


def mlp_reference(model, tokenizer, words, layers):
    """Every sentence alone: each block's MLP neurons recomputed from the module's weights,
    gelu(dense_h_to_4h(post_attention_layernorm(r))) with r the residual that the block hands its MLP."""
    width = 4 * model.config.hidden_size
    out = {layer: np.zeros((len(words), width), dtype=np.float32) for layer in layers}
    blocks = model.transformer.h
    residual = {}
    for sentence in sentences_from_table(words):
        (enc,) = encode(tokenizer, [sentence], "natural")
        residual.clear()
        hooks = [blocks[layer - 1].mlp.register_forward_hook(
            lambda module, args, output, layer=layer: residual.update({layer: args[1]})) for layer in layers]
        with torch.no_grad():
            model(input_ids=torch.from_numpy(enc.ids)[None])
        for hook in hooks:
            hook.remove()
        for layer in layers:
            block = blocks[layer - 1]
            with torch.no_grad():
                x = block.post_attention_layernorm(residual[layer][0])
                neurons = torch.nn.functional.gelu(torch.nn.functional.linear(
                    x, block.mlp.dense_h_to_4h.weight, block.mlp.dense_h_to_4h.bias), approximate="tanh")
            for w, row in enumerate(sentence.rows):
                out[layer][row] = neurons[enc.token[enc.word == w]].mean(0).numpy()
    return out


def test_mlp_site_is_the_gelu_output_of_each_block(tiny, tmp_path):
    _, tokenizer, model, words = tiny
    layers = [1, 2, 3]
    assert mlp_width(model) == 4 * model.config.hidden_size
    meta = dump_word_activations(model, tokenizer, words, {layer: tmp_path / f"layer{layer}.npy" for layer in layers},
                                 pooling="natural", batch_size=5, site="mlp", progress=False)
    assert meta["site"] == "mlp" and meta["width"] == 4 * model.config.hidden_size
    reference = mlp_reference(model, tokenizer, words, layers)
    for layer in layers:
        dumped = np.load(tmp_path / f"layer{layer}.npy").astype(np.float32)
        assert dumped.shape == (len(words), 4 * model.config.hidden_size)
        np.testing.assert_allclose(dumped, reference[layer], rtol=2e-3, atol=2e-3)


def test_mlp_site_fails_when_the_down_projection_is_bypassed(tiny, tmp_path):
    """BLOOM with pretraining_tp > 1 and slow_but_exact slices the down projection's weight instead of
    calling it: the hook would see nothing, so the dump must fail rather than write zeros."""
    _, tokenizer, model, words = tiny
    sliced = copy.deepcopy(model)
    for block in sliced.transformer.h:
        block.mlp.pretraining_tp, block.mlp.slow_but_exact = 2, True
    with pytest.raises(RuntimeError, match=r"down projection of block\(s\) \[2\] was never called"):
        dump_word_activations(sliced, tokenizer, words, {2: tmp_path / "layer2.npy"}, site="mlp", progress=False)
    assert list(tmp_path.iterdir()) == []
