"""Is a checkpoint what its name says? Its language-model loss on a fixed multilingual sample,
and the per-checkpoint record that also carries its weight hashes.

The sample: the sentences of the config's `similarity` section (its `files`, its `hub` corpus, or the
demo's parallel files), the first `checks.lm_loss_sentences` non-empty aligned pairs of each configured
pair, each language's side once (the first pair that has it, in config order). The same sentences for
every checkpoint of every model; parallel text, so every language weighs alike. For the demo these
are the generator's parallel sentences, drawn apart from the pre-training text.

The loss: each sentence preceded by the EOS token (the document separator of pre-training, so the
first word is predicted too), mean cross-entropy in nats per predicted token within a language
(transformers' causal-LM loss, which shifts the labels itself), then the mean over languages.

The verdicts drawn from these records (duplicate, suspect) are in xlprobe.checks.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm

from xlprobe.io import read_json, write_json
from xlprobe.provenance import provenance

log = logging.getLogger(__name__)

# The similarity settings that decide the sample's text (not its layers or pooling).
TEXT_KEYS = ("pairs", "files", "hub")


# ----------------------------------------------------------------------------- the sample
def text_settings(similarity: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of `similarity:` that names the sample's text."""
    return {k: v for k, v in (similarity or {}).items() if k in TEXT_KEYS}


def sample_sentences(
    similarity: Mapping[str, Any], per_language: int, demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> dict[str, list[str]]:
    """language -> its sentences of the sample (see the module's docstring), languages in config order."""
    from xlprobe.inputs import similarity_files
    from xlprobe.similarity import parallel_sentences

    files = similarity_files(similarity, demo_dir)
    sample: dict[str, list[str]] = {}
    for source, target in similarity.get("pairs") or []:
        if source in sample and target in sample:
            continue
        left, right = parallel_sentences(files, source, target, per_language, similarity.get("hub"), cache_dir)
        sample.setdefault(source, left)
        sample.setdefault(target, right)
    return sample


# ----------------------------------------------------------------------------- the loss
def sentence_losses(model, tokenizer, sentences: Sequence[str], batch_size: int = 16,
                    max_length: int = 128) -> tuple[float, int]:
    """(summed cross-entropy in nats, predicted tokens) over `sentences`, each preceded by EOS."""
    import torch  # here: Snakemake's start (rules/common.smk) and `xlprobe plan` import this module

    with torch.no_grad():
        return _sentence_losses(torch, model, tokenizer, sentences, batch_size, max_length)


def _sentence_losses(torch, model, tokenizer, sentences, batch_size, max_length):
    model.eval()
    device = next(model.parameters()).device
    start = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start
    encoded = [[start, *ids][:max_length] for ids in tokenizer(list(sentences), add_special_tokens=False)["input_ids"]]
    total, tokens = 0.0, 0
    for first in range(0, len(encoded), batch_size):
        batch = encoded[first : first + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=device)
        labels = input_ids.masked_fill(mask == 0, -100)
        predicted = int((labels[:, 1:] != -100).sum())  # the model shifts the labels by one itself
        if predicted == 0:
            continue
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss  # mean per predicted token
        total += float(loss) * predicted
        tokens += predicted
    return total, tokens


def lm_loss(model, tokenizer, sample: Mapping[str, Sequence[str]], batch_size: int = 16) -> dict[str, Any]:
    """{"lm_loss": mean over languages of each language's loss per token (nats), "languages": language ->
    {loss, tokens, sentences}}."""
    languages = {}
    for language, sentences in tqdm(sample.items(), desc="languages"):
        total, tokens = sentence_losses(model, tokenizer, sentences, batch_size)
        languages[language] = {"loss": total / tokens if tokens else math.nan, "tokens": tokens,
                               "sentences": len(sentences)}
        log.info("%s: loss %.4f nats per token over %d tokens of %d sentences", language,
                 languages[language]["loss"], tokens, len(sentences))
    losses = [entry["loss"] for entry in languages.values() if not math.isnan(entry["loss"])]
    return {"lm_loss": sum(losses) / len(losses) if losses else math.nan, "languages": languages}


# ----------------------------------------------------------------------------- the stage
def checkpoint_weights(model: Mapping[str, Any], step: int | str, marker: str | os.PathLike | None,
                       demo_dir: str | os.PathLike, cache_dir: str | None) -> dict[str, Any]:
    """The weight hashes of a checkpoint: those its download marker recorded at prefetch (hub, local),
    else its files hashed here (demo models; markers without weight hashes)."""
    from xlprobe.checkpoints import local_files, resolve_checkpoint
    from xlprobe.weights import hash_folder

    if marker is not None and os.path.exists(marker):
        recorded = read_json(marker).get("weights")
        if recorded:
            return recorded
    model_dir, _ = local_files(resolve_checkpoint(dict(model), step, demo_dir), cache_dir)
    return hash_folder(model_dir)


def run_lm_loss(
    model: dict[str, Any],
    step: int | str,
    similarity: Mapping[str, Any] | None,
    checks: Mapping[str, Any],
    output: str | os.PathLike,
    *,
    marker: str | os.PathLike | None = None,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The workflow stage: one checkpoint's loss on the sample and its weight hashes, as one JSON."""
    from xlprobe.checkpoints import checkpoint_record, load_checkpoint

    weights = checkpoint_weights(model, step, marker, demo_dir, cache_dir)
    if similarity and similarity.get("pairs"):
        net, tokenizer, checkpoint = load_checkpoint(model, step, demo_dir=demo_dir, cache_dir=cache_dir,
                                                     device=checks["device"], dtype="auto")
        sample = sample_sentences(similarity, checks["lm_loss_sentences"], demo_dir, cache_dir)
        result = lm_loss(net, tokenizer, sample, checks["batch_size"])
    else:  # the weight hashes still tell duplicates apart; nothing to load
        log.warning("no `similarity` text in the config: %s step %s has no LM loss", model["name"], step)
        checkpoint = checkpoint_record(model, step, demo_dir=demo_dir, cache_dir=cache_dir)
        result = {"lm_loss": math.nan, "languages": {}}
    log.info("%s step %s: LM loss %.4f nats per token", model["name"], step, result["lm_loss"])
    # JSON has no NaN: no loss is null
    result["lm_loss"] = None if math.isnan(result["lm_loss"]) else result["lm_loss"]
    for entry in result["languages"].values():
        entry["loss"] = None if math.isnan(entry["loss"]) else entry["loss"]
    record = {
        "model": model["name"], "step": str(step), **result, "weights": weights,
        "provenance": provenance({"model": model, "similarity": text_settings(similarity), "checks": checks},
                                 point={"model": model["name"], "step": str(step)}, checkpoint=checkpoint),
    }
    write_json(output, record)
    return record
