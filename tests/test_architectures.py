"""Both activation sites on every supported architecture family, on tiny random models: the residual
site against whole-sentence forward passes, the mlp site against each MLP's computation redone from
its weights, and as wide as the model's intermediate size."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_activations import one_at_a_time
from tiny_families import intermediate_size, tiny_causal_lm

from xlprobe.activations import (
    MLP_DOWN_PROJECTIONS,
    dump_word_activations,
    encode,
    mlp_width,
    sentences_from_table,
)

FAMILIES = ["bloom", "gpt_neox", "gpt2", "llama", "olmo", "olmo2", "qwen2"]
LAYERS = [1, 2, 4]


@pytest.fixture(scope="module")
def words() -> pd.DataFrame:
    rng = random.Random(0)
    stems = ["kat", "doramil", "sup", "renutavi", "lor", "x", "zyqwv"]
    rows = [{"sentence_id": f"s{s}", "word_id": w + 1, "form": rng.choice(stems) + rng.choice(["a", "es", ""])}
            for s in range(9) for w in range(rng.randint(1, 10))]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def mlp_neurons_from_weights(family: str, mlp: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the down projection, computed from the MLP's own weights and its input x."""
    if family in ("bloom", "gpt_neox"):
        pre = F.linear(x, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias)
        return F.gelu(pre, approximate="tanh" if family == "bloom" else "none")  # NeoX: hidden_act "gelu"
    if family == "gpt2":  # Conv1D weights are [in, out]; activation "gelu_new" is gelu's tanh form
        return F.gelu(x @ mlp.c_fc.weight + mlp.c_fc.bias, approximate="tanh")
    return F.silu(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight)  # Llama family


def mlp_reference(family, model, tokenizer, words, layers):
    """Every sentence alone: each block's MLP input caught by a hook on the MLP module, the neurons
    recomputed from the weights, averaged over each word's subwords."""
    blocks = model.base_model.h if family in ("bloom", "gpt2") else model.base_model.layers
    out = {layer: np.zeros((len(words), intermediate_size(model.config)), dtype=np.float32) for layer in layers}
    inputs = {}
    for sentence in sentences_from_table(words):
        (enc,) = encode(tokenizer, [sentence], "natural")
        inputs.clear()
        hooks = [blocks[layer - 1].mlp.register_forward_hook(
            lambda module, args, output, layer=layer: inputs.update({layer: args[0]})) for layer in layers]
        with torch.no_grad():
            model(input_ids=torch.from_numpy(enc.ids)[None])
        for hook in hooks:
            hook.remove()
        for layer in layers:
            with torch.no_grad():
                neurons = mlp_neurons_from_weights(family, blocks[layer - 1].mlp, inputs[layer][0])
            for w, row in enumerate(sentence.rows):
                out[layer][row] = neurons[enc.token[enc.word == w]].mean(0).numpy()
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_site_equals_each_mlp_s_computation_and_is_intermediate_size_wide(family, tiny_bloom, words, tmp_path):
    tokenizer = tiny_bloom.tokenizer
    model = tiny_causal_lm(family, len(tokenizer))
    width = intermediate_size(model.config)
    assert mlp_width(model) == width
    meta = dump_word_activations(model, tokenizer, words, {layer: tmp_path / f"{layer}.npy" for layer in LAYERS},
                                 pooling="natural", batch_size=4, site="mlp", progress=False)
    assert meta["width"] == width
    reference = mlp_reference(family, model, tokenizer, words, LAYERS)
    for layer in LAYERS:
        dumped = np.load(tmp_path / f"{layer}.npy").astype(np.float32)
        assert dumped.shape == (len(words), width)
        scale = np.abs(reference[layer]).max()
        assert scale > 1e-2  # not vacuous
        np.testing.assert_allclose(dumped / scale, reference[layer] / scale, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_residual_site_equals_whole_sentence_hidden_states(family, tiny_bloom, words, tmp_path):
    tokenizer = tiny_bloom.tokenizer
    model = tiny_causal_lm(family, len(tokenizer))
    layers = [1, 3, 5]  # 5 = after the last block, with the final norm
    meta = dump_word_activations(model, tokenizer, words, {layer: tmp_path / f"{layer}.npy" for layer in layers},
                                 pooling="natural", batch_size=4, site="residual", progress=False)
    assert meta["width"] == model.config.hidden_size
    reference = one_at_a_time(model, tokenizer, words, layers, "natural")
    for layer in layers:
        scale = np.abs(reference[layer]).max()
        np.testing.assert_allclose(np.load(tmp_path / f"{layer}.npy").astype(np.float32) / scale,
                                   reference[layer] / scale, rtol=2e-3, atol=2e-3)


def test_mlp_site_of_another_architecture_fails_naming_the_supported_ones(tiny_bloom, words, tmp_path):
    from transformers import GPTJConfig, GPTJForCausalLM

    model = GPTJForCausalLM(GPTJConfig(vocab_size=len(tiny_bloom.tokenizer), n_embd=32, n_layer=2, n_head=4,
                                       rotary_dim=4, n_positions=128)).eval()
    supported = ", ".join(sorted(MLP_DOWN_PROJECTIONS))
    with pytest.raises(ValueError, match=f"architecture 'gptj' is not supported \\(supported: {supported}\\)"):
        dump_word_activations(model, tiny_bloom.tokenizer, words, {1: tmp_path / "1.npy"}, site="mlp", progress=False)
    assert list(tmp_path.iterdir()) == []
