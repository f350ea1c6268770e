"""One tiny random config per architecture family (as BloomModelTester does for BLOOM): 4 blocks,
hidden 32, an MLP width that is not 4 x hidden so that a dump of the wrong width shows."""

from __future__ import annotations

import torch

HIDDEN, BLOCKS, HEADS, INTERMEDIATE = 32, 4, 4, 48


def tiny_config(family: str, vocab_size: int, pad_token_id: int | None = None):
    """A transformers config of `family` (bloom, gpt_neox, gpt2, llama, olmo, olmo2, qwen2)."""
    import transformers as t

    common = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, "bos_token_id": 0, "eos_token_id": 0,
              # weights larger than the default 0.02, so that neurons are far from float16's resolution
              "initializer_range": 0.2}
    if family == "bloom":  # BLOOM's MLP is 4 x hidden by construction
        return t.BloomConfig(hidden_size=HIDDEN, n_layer=BLOCKS, n_head=HEADS, **common)
    if family == "gpt2":
        return t.GPT2Config(n_embd=HIDDEN, n_layer=BLOCKS, n_head=HEADS, n_inner=INTERMEDIATE, n_positions=128,
                            **common)
    classes = {"gpt_neox": t.GPTNeoXConfig, "llama": t.LlamaConfig, "olmo": t.OlmoConfig, "olmo2": t.Olmo2Config,
               "qwen2": t.Qwen2Config}
    return classes[family](hidden_size=HIDDEN, num_hidden_layers=BLOCKS, num_attention_heads=HEADS,
                           num_key_value_heads=2 if family in ("llama", "qwen2") else None,
                           intermediate_size=INTERMEDIATE, max_position_embeddings=128, **common)


def intermediate_size(config) -> int:
    """The MLP width a config declares (BLOOM: 4 x hidden; GPT-2: n_inner, else 4 x hidden)."""
    if config.model_type == "bloom":
        return 4 * config.hidden_size
    if config.model_type == "gpt2":
        return config.n_inner or 4 * config.hidden_size
    return config.intermediate_size


def tiny_causal_lm(family: str, vocab_size: int, seed: int = 0, pad_token_id: int | None = None):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, vocab_size, pad_token_id)).eval()
