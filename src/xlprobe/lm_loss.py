"""Is a checkpoint what its name says? Its language-model loss on a fixed multilingual sample,
and the per-checkpoint record that also carries its weight hashes.

Two samples, written once per run by `write_sample` (the rule lm_loss_sample) and read by every
checkpoint's job, so that every checkpoint of every model sees the same sentences:

- `treebanks`, in every config: per language, `checks.lm_loss_sentences` sentences drawn (seeded by the
  config's `seed` and the language) from the held-out part of the language's treebanks: their UD test
  files (`*-test.conllu`) where a treebank has them, else all its files; each sentence its `# text`
  comment, else its surface tokens joined by spaces; kept in corpus order.
- `parallel`, where the config has a `similarity` section: its sentences (its `files`, its `hub`
  corpus, or the demo's parallel files), the first `checks.lm_loss_sentences` non-empty aligned pairs of
  each configured pair, each language's side once (the first pair that has it, in config order).

The verdict (xlprobe.checks) reads `lm_loss`, the treebank sample's loss: every config has it, so a
run's verdict does not depend on whether it also measures similarity. The parallel sample's loss stays
in the record beside it (`samples.parallel`), every language weighing alike there.

The loss: each sentence preceded by the EOS token (the document separator of pre-training, so the
first word is predicted too), mean cross-entropy in nats per predicted token within a language
(transformers' causal-LM loss, which shifts the labels itself), then the mean over languages. The
record also carries `uniform_loss`, ln of the model's output width: the loss of a uniform guess, which
an untrained model is close to and a broken one is far above.

The loss is computed in a job of its own per checkpoint (rule lm_loss), not inside the dump jobs:
docs/checks.md gives the reasons and the measured costs.

The verdicts drawn from these records (duplicate, suspect) are in xlprobe.checks.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from xlprobe.identity import model_point
from xlprobe.io import read_json, write_json
from xlprobe.provenance import provenance

log = logging.getLogger(__name__)

# The similarity settings that decide the sample's text (not its layers or pooling).
TEXT_KEYS = ("pairs", "files", "hub")
# The sample the verdicts read.
VERDICT_SAMPLE = "treebanks"


# ----------------------------------------------------------------------------- the samples
def text_settings(similarity: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of `similarity:` that names the sample's text."""
    return {k: v for k, v in (similarity or {}).items() if k in TEXT_KEYS}


def sample_sentences(
    similarity: Mapping[str, Any], per_language: int, demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> dict[str, list[str]]:
    """language -> its sentences of the parallel sample (see the module's docstring), languages in config order."""
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


def held_out_files(files: Iterable[str | os.PathLike]) -> list[str]:
    """A treebank's UD test files (`*-test.conllu`) where it has them, else all its CoNLL-U files."""
    from xlprobe.wordtable import conllu_files

    every = conllu_files(files)
    test = [path for path in every if Path(path).name.endswith("-test.conllu")]
    return sorted(test or every)


def conllu_texts(path: str | os.PathLike) -> list[str]:
    """The non-empty sentences of a CoNLL-U file: each its `# text`, else its surface tokens joined by spaces."""
    import conllu

    texts = []
    with open(path, encoding="utf-8") as handle:
        for sentence in conllu.parse_incr(handle):
            text = sentence.metadata.get("text")
            if text is None:  # surface tokens: multiword tokens (ID 2-3) and words outside them; no empty nodes
                covered = {i for token in sentence if isinstance(token["id"], tuple) and token["id"][1] == "-"
                           for i in range(token["id"][0], token["id"][2] + 1)}
                text = " ".join(token["form"] for token in sentence
                                if (isinstance(token["id"], tuple) and token["id"][1] == "-")
                                or (isinstance(token["id"], int) and token["id"] not in covered))
            if text.strip():
                texts.append(text.strip())
    return texts


def treebank_sentences(
    treebanks: Mapping[str, Sequence[str | os.PathLike]], per_language: int, seed: int,
) -> dict[str, list[str]]:
    """language -> `per_language` sentences drawn from the held-out files of its treebanks (`treebanks`:
    language -> the files of its treebanks), seeded by `seed` and the language, in corpus order."""
    sample = {}
    for language, files in treebanks.items():
        texts = [text for path in held_out_files(files) for text in conllu_texts(path)]
        if not texts:
            raise ValueError(f"language {language}: no sentences in its treebank files {list(map(str, files))}")
        chosen = sorted(random.Random(f"{seed}:{language}").sample(range(len(texts)), min(per_language, len(texts))))
        sample[language] = [texts[i] for i in chosen]
    return sample


def write_sample(
    output: str | os.PathLike,
    treebanks: Mapping[str, Sequence[str | os.PathLike]],
    similarity: Mapping[str, Any] | None,
    per_language: int,
    seed: int,
    *,
    demo_dir: str | os.PathLike = "resources/demo",
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The workflow stage lm_loss_sample: both samples (see the module's docstring) as one JSON."""
    samples = {"treebanks": treebank_sentences(treebanks, per_language, seed)}
    if similarity and similarity.get("pairs"):
        samples["parallel"] = sample_sentences(similarity, per_language, demo_dir, cache_dir)
    for name, sample in samples.items():
        log.info("%s sample: %s", name, ", ".join(f"{lang} {len(s)} sentences" for lang, s in sample.items()))
    record = {"samples": samples, "provenance": provenance(
        {"treebanks": {lang: [str(f) for f in files] for lang, files in treebanks.items()},
         "similarity": text_settings(similarity), "lm_loss_sentences": per_language, "seed": seed})}
    write_json(output, record)
    return record


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
    {loss, tokens, sentences}, "non_finite": languages whose loss is NaN or infinite}.

    JSON has no NaN: a loss that is not a finite number is None, its language listed in `non_finite` (a
    forward pass that overflows or meets NaN weights: a broken checkpoint, xlprobe.checks)."""
    languages, non_finite = {}, []
    for language, sentences in tqdm(sample.items(), desc="languages"):
        total, tokens = sentence_losses(model, tokenizer, sentences, batch_size)
        loss = total / tokens if tokens and math.isfinite(total) else None
        if tokens and loss is None:
            non_finite.append(language)
        languages[language] = {"loss": loss, "tokens": tokens, "sentences": len(sentences)}
        log.info("%s: loss %s nats per token over %d tokens of %d sentences", language,
                 "none" if loss is None else f"{loss:.4f}", tokens, len(sentences))
    losses = [entry["loss"] for entry in languages.values() if entry["loss"] is not None]
    return {"lm_loss": sum(losses) / len(losses) if losses else None, "languages": languages,
            "non_finite": non_finite}


def output_width(model) -> int:
    """The number of tokens the model's LM head scores (the config's vocab_size, padded in BLOOM)."""
    return int(model.get_output_embeddings().weight.shape[0])


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
    sample_path: str | os.PathLike,
    checks: Mapping[str, Any],
    output: str | os.PathLike,
    *,
    marker: str | os.PathLike | None = None,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The workflow stage lm_loss: one checkpoint's loss on each sample of `sample_path` (`write_sample`)
    and its weight hashes, as one JSON. `checks`: batch_size, device."""
    from xlprobe.checkpoints import load_checkpoint

    samples = read_json(sample_path)["samples"]
    if VERDICT_SAMPLE not in samples:
        raise ValueError(f"{sample_path}: no {VERDICT_SAMPLE!r} sample (made by an older xlprobe: rerun it)")
    weights = checkpoint_weights(model, step, marker, demo_dir, cache_dir)
    started = time.perf_counter()
    net, tokenizer, checkpoint = load_checkpoint(model, step, demo_dir=demo_dir, cache_dir=cache_dir,
                                                 device=checks["device"], dtype="auto")
    loaded = time.perf_counter()
    results = {}
    for name, sample in samples.items():
        log.info("%s sample", name)
        results[name] = lm_loss(net, tokenizer, sample, checks["batch_size"])
    # what computing the loss inside another job that loads the checkpoint would save, and what it would add
    seconds = {"load": loaded - started, "loss": time.perf_counter() - loaded}
    verdict = results[VERDICT_SAMPLE]["lm_loss"]
    log.info("%s step %s: LM loss %s nats per token (%s sample)", model["name"], step,
             "none" if verdict is None else f"{verdict:.4f}", VERDICT_SAMPLE)
    point = model_point(model, step)
    record = {
        **point, "lm_loss": verdict, "lm_loss_sample": VERDICT_SAMPLE,
        "languages": results[VERDICT_SAMPLE]["languages"], "non_finite": results[VERDICT_SAMPLE]["non_finite"],
        "samples": results,
        "uniform_loss": math.log(output_width(net)), "weights": weights, "seconds": seconds,
        "provenance": provenance({"model": model, "checks": dict(checks)}, sample=str(sample_path),
                                 point=point, checkpoint=checkpoint),
    }
    write_json(output, record)
    return record
