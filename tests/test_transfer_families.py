"""Transfer on each architecture family, on tiny random models: the LoRA targets (peft's mapping, or
ours where peft has none), transformers' heads or the generic token head where there is none, a
few updates that lower the loss, and clear errors for what no head or target covers."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from tiny_families import tiny_causal_lm

from xlprobe.transfer import run_transfer
from xlprobe.transfer.data import NLI_LABELS, UPOS
from xlprobe.transfer.methods import LORA_TARGETS, classifier_class, load_classifier, lora_targets

FAMILIES = ["bloom", "gpt_neox", "gpt2", "llama", "olmo2", "qwen2"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoints(tiny_bloom, tmp_path_factory):
    """family -> a saved tiny causal LM of that family with the shared tiny tokenizer."""
    root = tmp_path_factory.mktemp("families")
    tokenizer = tiny_bloom.tokenizer
    folders = {}
    for family in FAMILIES:
        folder = root / family
        tiny_causal_lm(family, len(tokenizer), pad_token_id=tokenizer.pad_token_id).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[family] = folder
    return folders


def expected_targets(family: str) -> set[str]:
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    return set(PEFT_TARGETS.get(family) or LORA_TARGETS[family])


def batch(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 300, (8, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[::2, 9:] = 0  # right padding in half the rows
    if kind == "udpos":
        labels = torch.randint(0, len(UPOS), (8, 12), generator=generator)
        labels[mask == 0] = -100
    else:
        labels = torch.randint(0, len(NLI_LABELS), (8,), generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("kind", ["udpos", "xnli"])
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapts_the_family_s_targets_and_the_loss_falls(family, kind, checkpoints, tiny_bloom):
    labels = UPOS if kind == "udpos" else NLI_LABELS
    model = load_classifier(str(checkpoints[family]), kind, labels, "lora", tiny_bloom.tokenizer.pad_token_id, CPU)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name in trainable if ".lora_A" in name}
    assert adapted == expected_targets(family)
    assert any(".score." in name or ".classifier." in name for name in trainable)  # the new head trains whole
    inputs = batch(kind)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_olmo2_token_head_is_a_linear_layer_on_the_loaded_base_model(checkpoints, tiny_bloom):
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_layers import GenericForTokenClassification

    config = AutoConfig.from_pretrained(checkpoints["olmo2"])
    head = classifier_class("udpos", config)
    assert issubclass(head, GenericForTokenClassification) and head.__name__ == "Olmo2ForTokenClassification"
    model = load_classifier(str(checkpoints["olmo2"]), "udpos", UPOS, "full", tiny_bloom.tokenizer.pad_token_id, CPU)
    causal = AutoModelForCausalLM.from_pretrained(checkpoints["olmo2"])
    # the pretrained blocks are loaded, not initialised afresh
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, causal.model.layers[1].mlp.up_proj.weight)
    inputs = batch("udpos")
    with torch.no_grad():
        model.eval()
        hidden = causal.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(logits, hidden @ model.score.weight.T + model.score.bias)
    assert logits.shape == (8, 12, len(UPOS))


def test_architectures_without_a_head_or_targets_fail_clearly():
    from transformers import CodeGenConfig

    config = CodeGenConfig(n_embd=32, n_layer=2, n_head=4, rotary_dim=4)
    with pytest.raises(ValueError, match="no sequence classification head for architecture 'codegen'"):
        classifier_class("xnli", config)
    # CodeGen keeps its blocks under `transformer`, not where the generic head looks for them
    with pytest.raises(ValueError, match="no token classification head for architecture 'codegen'"):
        classifier_class("udpos", config)
    with pytest.raises(ValueError, match=r"transfer.lora.target_modules: peft has no LoRA targets for .*'madeup'"):
        lora_targets("madeup")
    assert lora_targets("madeup", {"target_modules": ["qkv"]}) == ["qkv"]
    assert lora_targets("bloom") == ["query_key_value"]  # the paper's


@pytest.mark.parametrize("family", ["gpt_neox", "olmo2"])
def test_pos_transfer_end_to_end(family, checkpoints, shared_data, tmp_path):
    udpos = shared_data / "udpos"
    task = {"name": "pos", "type": "udpos", "format": "xtreme", "source": "en", "targets": ["fr"],
            "files": {"train": str(udpos / "train-en.tsv"), "dev": str(udpos / "dev-en.tsv"),
                      "fr": str(udpos / "dev-fr.tsv")}}
    settings = {"method": "lora", "epochs": 1, "batch_size": 16, "lr": 1e-2, "max_length": 48, "device": "cpu",
                "max_train_examples": 160, "max_eval_examples": 60, "eval_interval": 5}
    out = tmp_path / "pos.tsv"
    run_transfer(checkpoints[family], task, settings, out, seed=0)
    table = pd.read_csv(out, sep="\t")
    assert set(table["language"]) == {"en", "fr"} and table["value"].between(0, 1).all()
    details = json.loads(out.with_suffix(".json").read_text())
    assert details["classifier"] == {"gpt_neox": "GPTNeoXForTokenClassification",
                                     "olmo2": "Olmo2ForTokenClassification"}[family]
    history = details["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
