"""Zero-shot cross-lingual transfer: fine-tune a checkpoint on the source language (English in the
paper), pick the best update on source dev only, and score every target language.

`run_transfer` is the whole stage: data (`data`), model and method (`methods`), loop and scores
(`train`, `metrics`), and the output files: the metrics TSV (`language, role, metric, value`) and a
JSON sidecar with the training history and provenance.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import AutoTokenizer

from xlprobe.devices import select_device
from xlprobe.identity import model_point, with_identity
from xlprobe.io import write_json, write_tsv
from xlprobe.provenance import provenance
from xlprobe.transfer.data import LABELS, TaskData, load_task
from xlprobe.transfer.methods import METHODS, load_classifier
from xlprobe.transfer.train import encode, evaluate, fine_tune
from xlprobe.workflow_config import schema_defaults

__all__ = [
    "DEFAULTS",
    "METHODS",
    "TaskData",
    "fine_tune_and_score",
    "load_task",
    "run_transfer",
    "transfer_checkpoint",
    "transfer_cli",
]

log = logging.getLogger(__name__)

# The paper's hyperparameters, from the schema (config/schema.yaml: AdamW 2e-5, linear decay, no
# warm-up, effective batch 32, max length 128; XNLI 5 epochs, POS 10); the budgets are off unless set.
# `transfer:` in the config overrides any of them.
DEFAULTS: dict[str, Any] = {
    "max_train_examples": None,
    "max_eval_examples": None,
    "eval_interval": None,
    "lora": {},
    **schema_defaults("transfer"),
}
METRICS_COLUMNS = ["language", "role", "metric", "value"]


def fine_tune_and_score(
    checkpoint: str | os.PathLike,
    data: TaskData,
    settings: dict[str, Any] | None = None,
    seed: int = 0,
    tokenizer: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fine-tune `checkpoint` on `data.train`, select on `data.source_dev`, score each target.

    Returns the metrics table (`language, role, metric, value`) and details (history, counts).
    """
    settings = {**DEFAULTS, **(settings or {})}
    epochs = settings["epochs"]
    epochs = epochs[data.kind] if isinstance(epochs, dict) else epochs
    device = select_device(settings["device"])
    torch.manual_seed(seed)  # the new head's initialisation and LoRA's

    tok = AutoTokenizer.from_pretrained(str(tokenizer or checkpoint), revision=None if tokenizer else revision,
                                        cache_dir=cache_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    pad_id, side = tok.pad_token_id, tok.padding_side
    labels = LABELS[data.kind]
    model = load_classifier(
        str(checkpoint), data.kind, labels, settings["method"], pad_id, device,
        lora=settings["lora"], revision=revision, cache_dir=cache_dir,
    )

    max_length = settings["max_length"]
    train = encode(data.kind, tok, data.train, labels, max_length)
    dev = encode(data.kind, tok, data.source_dev, labels, max_length)
    started = time.perf_counter()
    details = fine_tune(
        model, data.kind, train, dev, labels,
        epochs=epochs, batch_size=settings["batch_size"],
        gradient_accumulation=settings["gradient_accumulation"], lr=settings["lr"],
        eval_interval=settings["eval_interval"], device=device, pad_id=pad_id, side=side, seed=seed,
    )
    details["train_seconds"] = round(time.perf_counter() - started, 2)
    # Which head trained: transformers' own, or the generic one where the architecture has none.
    details["classifier"] = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__

    batch = 2 * settings["batch_size"]
    rows = []
    counts = {"train": len(data.train), "source_dev": len(data.source_dev)}
    dropped = {"train": train.dropped_words, "source_dev": dev.dropped_words}
    scored = [(data.source, "source", dev)]
    for language, examples in data.targets.items():
        encoded = encode(data.kind, tok, examples, labels, max_length)
        scored.append((language, "target", encoded))
        counts[language] = len(examples)
        dropped[language] = encoded.dropped_words
    for language, role, encoded in scored:
        scores = evaluate(model, data.kind, encoded, labels, batch, device, pad_id, side, desc=language)
        log.info("%s (%s): %s", language, role, scores)
        rows += [{"language": language, "role": role, "metric": m, "value": v} for m, v in scores.items()]
    details.update(
        examples=counts, device=str(device), epochs=epochs,
        **({"dropped_words": dropped} if data.kind == "udpos" else {}),
    )
    return pd.DataFrame(rows, columns=METRICS_COLUMNS), details


def run_transfer(
    checkpoint: str | os.PathLike,
    task: dict[str, Any],
    settings: dict[str, Any],
    output: str | os.PathLike,
    details_output: str | os.PathLike | None = None,
    data_files: Sequence[str | os.PathLike] = (),
    seed: int = 0,
    tokenizer: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    checkpoint_record: dict[str, Any] | None = None,
    point: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The workflow stage: read the task's data, fine-tune, and write the metrics TSV and its sidecar.

    `task` is one `transfer.tasks.<name>` entry (plus `name`), `settings` the rest of `transfer:`.
    The sidecar (default: the TSV's path with `.json`) holds history, counts and provenance, whose
    `checkpoint` is `checkpoint_record` (repo, revision, commit of a config checkpoint), else the
    directory (and revision) given. `point` (xlprobe.identity: model, seed, step, task), where a config
    model was run, leads the TSV's columns.
    """
    settings = {**DEFAULTS, **settings}
    data = load_task(
        task, data_files, seed=seed, max_train_examples=settings["max_train_examples"],
        max_eval_examples=settings["max_eval_examples"], cache_dir=cache_dir,
    )
    table, details = fine_tune_and_score(checkpoint, data, settings, seed, tokenizer, revision, cache_dir)
    if checkpoint_record is None:
        checkpoint_record = {"path": str(checkpoint), "revision": revision,
                             "tokenizer": {"path": str(tokenizer or checkpoint)}}
    if point is not None:
        table = with_identity(table, point)
    # The sidecar first: a TSV that looks finished always has its provenance.
    write_json(details_output or Path(output).with_suffix(".json"), {
        **details,
        "provenance": provenance({"task": task, "transfer": settings, "seed": seed}, checkpoint=checkpoint_record,
                                 **({"point": dict(point)} if point is not None else {})),
    })
    write_tsv(output, table)
    return table


def transfer_checkpoint(
    model: dict[str, Any],
    step: int | str,
    task: dict[str, Any],
    settings: dict[str, Any],
    output: str | os.PathLike,
    details_output: str | os.PathLike | None = None,
    data_files: Sequence[str | os.PathLike] = (),
    seed: int = 0,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
    point: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """`run_transfer` on a config model (`models.<name>` plus `name`) at `step`, found by xlprobe.checkpoints;
    `point` is the result's identity (default: the run's model and seed, the step, the task's name)."""
    from xlprobe.checkpoints import local_files, resolve_checkpoint

    checkpoint = resolve_checkpoint(model, step, demo_dir)
    model_dir, tokenizer_dir = local_files(checkpoint, cache_dir)
    log.info("checkpoint %s", checkpoint.describe())
    return run_transfer(
        model_dir, task, settings, output, details_output, data_files, seed,
        tokenizer=tokenizer_dir, cache_dir=cache_dir, checkpoint_record=checkpoint.record(model_dir, tokenizer_dir),
        point=point or model_point(model, step, task=task.get("name", task["type"])),
    )


def transfer_cli(args) -> int:
    """`xlprobe transfer`: the stage on a model directory, settings from the command line."""
    files = dict(item.split("=", 1) for item in args.file)
    task = {"name": args.task, "type": args.task, "source": args.source, "targets": args.targets, "files": files}
    if args.format:
        task["format"] = args.format
    settings = {"method": args.method, "device": args.device}
    for key in ("epochs", "max_train_examples", "max_eval_examples", "eval_interval", "batch_size", "lr", "max_length"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    table = run_transfer(args.checkpoint, task, settings, args.out, data_files=list(files.values()), seed=args.seed)
    print(table.to_string(index=False))
    return 0
