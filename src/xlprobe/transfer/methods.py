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
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

from xlprobe.workflow_config import SCHEMA, with_defaults

log = logging.getLogger(__name__)

METHODS = ("qlora", "lora", "full", "frozen")
# The paper's adapter settings (config/schema.yaml); `transfer.lora` in the config overrides any of them.
# The target modules are peft's for the architecture (BLOOM: query_key_value, the paper's) unless given.
LORA_DEFAULTS = with_defaults({"transfer": {"lora": {}}}, SCHEMA)["transfer"]["lora"]
# Architectures peft has no LoRA targets for: the attention's query and value projections, as peft
# chooses for Llama, whose attention OLMo's and OLMo-2's repeat.
LORA_TARGETS = {"olmo": ["q_proj", "v_proj"], "olmo2": ["q_proj", "v_proj"]}
_AUTO_CLASSES = {"udpos": AutoModelForTokenClassification, "xnli": AutoModelForSequenceClassification}
_HEADS = {"udpos": "token classification", "xnli": "sequence classification"}


def lora_targets(model_type: str, lora: dict[str, Any] | None = None) -> list[str]:
    """The modules LoRA adapts: `transfer.lora.target_modules` if set, else peft's own mapping for
    the architecture, else LORA_TARGETS; an architecture in none of them is an error."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = (lora or {}).get("target_modules") or PEFT_TARGETS.get(model_type) or LORA_TARGETS.get(model_type)
    if not targets:
        raise ValueError(f"transfer.lora.target_modules: peft has no LoRA targets for architecture '{model_type}'; "
                         "name its attention projections in the config")
    return list(targets)


def classifier_class(kind: str, config) -> type:
    """transformers' own head for the task where the architecture has one; for token classification
    without one (OLMo, OLMo-2), transformers' generic token head (dropout and a linear layer on the
    base model's last hidden states) on the architecture's base model. Anything else is an error."""
    from transformers.models.auto import modeling_auto

    names = {"udpos": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
             "xnli": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES}[kind]
    if config.model_type in names:
        return _AUTO_CLASSES[kind]
    from transformers import PreTrainedModel
    from transformers.modeling_layers import GenericForTokenClassification

    base = modeling_auto.MODEL_MAPPING.get(type(config), None)
    pretrained = next((c for c in getattr(base, "__mro__", ())[1:] if issubclass(c, PreTrainedModel)
                       and c.__name__.endswith("PreTrainedModel")), None)
    # The generic head keeps its base model under `model`: only where the architecture's checkpoints do.
    if kind != "udpos" or pretrained is None or pretrained.base_model_prefix != "model":
        raise ValueError(f"transfer: transformers has no {_HEADS[kind]} head for architecture '{config.model_type}'")
    log.warning("transformers has no token classification head for '%s': a linear head on its last hidden "
                "states (transformers' GenericForTokenClassification)", config.model_type)
    name = f"{pretrained.__name__.removesuffix('PreTrainedModel')}ForTokenClassification"
    return type(name, (GenericForTokenClassification, pretrained), {"__module__": __name__})


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
    """A `{Arch}For{Token,Sequence}Classification` (`classifier_class`) set up for `method`."""
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
    config = AutoConfig.from_pretrained(checkpoint, revision=revision, cache_dir=cache_dir)
    model = classifier_class(kind, config).from_pretrained(checkpoint, **kwargs)
    model.config.pad_token_id = pad_token_id
    if method != "qlora":
        model.to(device)
    head = head_name(model)

    if method in ("lora", "qlora"):
        from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

        if method == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        settings = {**LORA_DEFAULTS, **(lora or {}), "target_modules": lora_targets(config.model_type, lora)}
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
