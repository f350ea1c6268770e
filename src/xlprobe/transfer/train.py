"""Encoding, the fine-tuning loop and evaluation for the transfer tasks.

A plain PyTorch loop rather than transformers.Trainer: the whole procedure (AdamW, linear decay with
no warm-up, gradient accumulation to the effective batch, best-on-source-dev selection) reads top to
bottom, and the same loop serves peft, 4-bit and frozen models without Trainer's callbacks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from xlprobe.transfer.metrics import accuracy, seqeval_f1, tag_accuracy

log = logging.getLogger(__name__)

IGNORE = -100  # label of pieces that are not scored (non-first subwords, padding, untagged words)
SELECTION_METRIC = {"udpos": "f1", "xnli": "accuracy"}


@dataclass
class Encoded:
    """Model inputs: one id list per example, with per-piece labels (POS) or one label (XNLI)."""

    input_ids: list[list[int]]
    labels: list  # list[list[int]] for udpos, list[int] for xnli
    dropped_words: int = 0  # POS words cut by max_length, left out of training and scoring


def encode(kind: str, tokenizer, examples: Sequence, labels: list[str], max_length: int) -> Encoded:
    index = {label: i for i, label in enumerate(labels)}
    if kind == "xnli":
        premises, hypotheses, gold = zip(*examples)
        # A pair goes through the tokenizer as a pair, as XTREME's run_classify passes it.
        ids = tokenizer(
            list(premises), list(hypotheses), truncation=True, max_length=max_length
        )["input_ids"]
        return Encoded(ids, [index[g] for g in gold])

    # POS: each word tokenized alone, with the space that precedes it in running text; the label
    # sits on its first piece.
    flat = [(" " if i else "") + word for words, _ in examples for i, word in enumerate(words)]
    pieces = iter(tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else iter(())
    all_ids, all_labels, dropped = [], [], 0
    for words, tags in examples:
        ids: list[int] = []
        piece_labels: list[int] = []
        for tag in tags:
            word_pieces = next(pieces)
            if not word_pieces or len(ids) >= max_length:
                dropped += tag is not None
                continue
            ids.extend(word_pieces)
            piece_labels.extend([index[tag] if tag is not None else IGNORE] + [IGNORE] * (len(word_pieces) - 1))
        all_ids.append(ids[:max_length])
        all_labels.append(piece_labels[:max_length])
    return Encoded(all_ids, all_labels, dropped)


def collate(
    ids: Sequence[list[int]], labels: Sequence, pad_id: int, side: str
) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest example on the tokenizer's padding side."""
    width = max(len(x) for x in ids)

    def pad(row: list[int], value: int) -> list[int]:
        fill = [value] * (width - len(row))
        return fill + row if side == "left" else row + fill

    batch = {
        "input_ids": torch.tensor([pad(x, pad_id) for x in ids]),
        "attention_mask": torch.tensor([pad([1] * len(x), 0) for x in ids]),
    }
    if isinstance(labels[0], list):
        batch["labels"] = torch.tensor([pad(y, IGNORE) for y in labels])
    else:
        batch["labels"] = torch.tensor(list(labels))
    return batch


def _autocast(device: torch.device):
    # bf16 compute on GPU as in the paper's QLoRA setup; exact fp32 on CPU.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(
    model, kind: str, data: Encoded, labels: list[str], batch_size: int, device: torch.device,
    pad_id: int, side: str, desc: str = "evaluate",
) -> dict[str, float]:
    """Scores on one encoded set: accuracy (XNLI), or seqeval F1 and tag accuracy (POS)."""
    model.eval()
    gold_all: list = []
    predicted_all: list = []
    # Longest first in batches of similar length: less padding, same results.
    order = sorted(range(len(data.input_ids)), key=lambda i: -len(data.input_ids[i]))
    order = [i for i in order if data.input_ids[i]]
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, mininterval=5):
        chosen = order[start : start + batch_size]
        batch = collate([data.input_ids[i] for i in chosen], [data.labels[i] for i in chosen], pad_id, side)
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        predicted = logits.argmax(-1).cpu()
        gold = batch["labels"].cpu()
        if kind == "xnli":
            gold_all.extend(gold.tolist())
            predicted_all.extend(predicted.tolist())
        else:
            for g, p in zip(gold, predicted):
                scored = g != IGNORE
                gold_all.append([labels[t] for t in g[scored].tolist()])
                predicted_all.append([labels[t] for t in p[scored].tolist()])
    if kind == "xnli":
        return {"accuracy": accuracy(gold_all, predicted_all)}
    return {"f1": seqeval_f1(gold_all, predicted_all), "accuracy": tag_accuracy(gold_all, predicted_all)}


def fine_tune(
    model,
    kind: str,
    train: Encoded,
    dev: Encoded,
    labels: list[str],
    *,
    epochs: float,
    batch_size: int,
    gradient_accumulation: int,
    lr: float,
    eval_interval: int | None,
    device: torch.device,
    pad_id: int,
    side: str,
    seed: int,
) -> dict[str, Any]:
    """Train; evaluate on source dev every `eval_interval` updates and after each epoch; keep the best.

    The trainable weights of the best source-dev evaluation are restored into `model` at the end.
    Returns the evaluation history and the chosen update.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    # weight_decay 0: the Hugging Face default the paper's scripts ran with.
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=lr, weight_decay=0.0)
    n = len(train.input_ids)
    updates_per_epoch = math.ceil(n / (batch_size * gradient_accumulation))
    total_updates = max(1, math.ceil(epochs * updates_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=total_updates)
    generator = torch.Generator().manual_seed(seed)
    metric = SELECTION_METRIC[kind]
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf, "update": None, "state": None}

    def check(update: int, epoch: float, loss: float) -> None:
        scores = evaluate(model, kind, dev, labels, 2 * batch_size, device, pad_id, side, desc="source dev")
        history.append({"update": update, "epoch": round(epoch, 3), "train_loss": loss, **{f"dev_{k}": v for k, v in scores.items()}})
        log.info("update %d (epoch %.2f): train loss %.4f, source dev %s", update, epoch, loss, scores)
        if scores[metric] > best["score"]:
            best.update(score=scores[metric], update=update,
                        state={name: p.detach().to("cpu", copy=True) for name, p in trainable})
        model.train()

    model.train()
    update, running, seen = 0, 0.0, 0
    progress = tqdm(total=total_updates, desc="fine-tune", mininterval=5)
    while update < total_updates:
        order = torch.randperm(n, generator=generator).tolist()
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        for micro, chosen in enumerate(batches):
            batch = collate([train.input_ids[i] for i in chosen], [train.labels[i] for i in chosen], pad_id, side)
            batch = {k: v.to(device) for k, v in batch.items()}
            with _autocast(device):
                loss = model(**batch).loss / gradient_accumulation
            loss.backward()
            running += loss.item()
            last_of_epoch = micro == len(batches) - 1
            if (micro + 1) % gradient_accumulation and not last_of_epoch:
                continue
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            update += 1
            seen += 1
            progress.update()
            epoch = update / updates_per_epoch
            if (eval_interval and update % eval_interval == 0) or last_of_epoch or update == total_updates:
                check(update, epoch, running / seen)
                running, seen = 0.0, 0
            if update == total_updates:
                break
    progress.close()
    with torch.no_grad():
        for name, p in trainable:
            p.copy_(best["state"][name].to(p.device))
    log.info("best source dev %s %.4f at update %d", metric, best["score"], best["update"])
    return {"history": history, "best_update": best["update"], "best_dev": best["score"], "updates": total_updates}
