"""Loading a checkpoint with a classification head, ready for one of the fine-tuning methods.

- `qlora`: the paper's. 4-bit NF4 weights with double quantization and bf16 compute (bitsandbytes,
  CUDA only), LoRA adapters on top.
- `lora`: the same adapters on the full-precision model; runs anywhere.
- `full`: every weight trains.
- `frozen`: only the new linear head trains, on the frozen model's last-layer features. A fast proxy
  for the paper's fine-tuning (a deviation: it measures how linearly separable the English-trained
  task is in each language, not how well a tuned model transfers).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

log = logging.getLogger(__name__)

METHODS = ("qlora", "lora", "full", "frozen")
# The paper's adapter settings; `transfer.lora` in the config overrides any of them.
LORA_DEFAULTS = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query_key_value"]}
_AUTO_CLASSES = {"udpos": AutoModelForTokenClassification, "xnli": AutoModelForSequenceClassification}


def head_name(model: torch.nn.Module) -> str:
    """The classification head's attribute: BLOOM's token head is `classifier`, its sequence head `score`."""
    for name in ("score", "classifier"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ValueError(f"{type(model).__name__} has no `score` or `classifier` head")


def load_classifier(
    checkpoint: str,
    kind: str,
    labels: list[str],
    method: str,
    pad_token_id: int,
    device: torch.device,
    lora: dict[str, Any] | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> torch.nn.Module:
    """A `BloomFor{Token,Sequence}Classification` (any AutoModelFor... architecture) set up for `method`."""
    if method not in METHODS:
        raise ValueError(f"transfer.method: unknown method '{method}' (one of {', '.join(METHODS)})")
    kwargs: dict[str, Any] = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "pad_token_id": pad_token_id,
        "revision": revision,
        "cache_dir": cache_dir,
    }
    if method == "qlora":
        kwargs.update(_quantization(device))
    model = _AUTO_CLASSES[kind].from_pretrained(checkpoint, **kwargs)
    model.config.pad_token_id = pad_token_id
    if method != "qlora":
        model.to(device)
    head = head_name(model)

    if method in ("lora", "qlora"):
        from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

        if method == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        settings = {**LORA_DEFAULTS, **(lora or {})}
        task_type = TaskType.TOKEN_CLS if kind == "udpos" else TaskType.SEQ_CLS
        # modules_to_save: the freshly initialised head must train alongside the adapters.
        model = get_peft_model(model, LoraConfig(task_type=task_type, modules_to_save=[head], **settings))
    elif method == "frozen":
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith(f"{head}.")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("%s: %d of %d parameters train (%.2f%%)", method, trainable, total, 100 * trainable / total)
    return model


def _quantization(device: torch.device) -> dict[str, Any]:
    """from_pretrained arguments for 4-bit NF4 with double quantization and bf16 compute."""
    if device.type != "cuda":
        raise RuntimeError(
            f"transfer.method 'qlora' needs a CUDA GPU (bitsandbytes 4-bit weights), but the device is "
            f"'{device}'. Use method 'lora' (same adapters, full precision), 'full' or 'frozen' instead."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise RuntimeError("transfer.method 'qlora' needs bitsandbytes: pip install 'xlprobe[qlora]'") from error
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        # The new classification head stays in full precision: it trains whole (modules_to_save).
        llm_int8_skip_modules=["score", "classifier"],
    )
    return {"quantization_config": config, "dtype": torch.bfloat16, "device_map": {"": device.index or 0}}
