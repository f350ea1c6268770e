"""Check and time every GPU stage of the workflow on random-weight models of the paper's shapes.

`scripts/gpu-check --device cuda --out DIR` (no network, no download): BLOOM models built from a
`BloomConfig` (bloom-560m, and bloom-1b7 where the GPU has the memory) with random weights, saved as
a local checkpoint and loaded by the workflow's own loader, then run through the workflow's own
functions on generated sentences of UD-like lengths:

- dumps (`activations.dump_word_activations`) at each GPU dtype: words/s, peak GPU memory, the rate
  as a fraction of the device's matrix-product bound (measured here with one large product), and the
  largest relative difference of a word's vector from the CPU float32 dump of the same sentences;
- one slice of a transfer epoch (`transfer.methods.load_classifier`, `transfer.train.fine_tune`)
  with LoRA and QLoRA: examples/s, peak memory, the training loss of the first and last interval;
- the probe (`probing.probe_attribute`) on the GPU and the CPU on planted data: picks and speed;
- similarity (`similarity.parallel_similarity`) and `lm_loss.lm_loss` on a small sample, against the
  CPU float32 model.

It prints one table and writes, under DIR: `gpu_check.md` (the table), `gpu_check.json` (every
number, with provenance) and `unit_costs.tsv` (the shipped unit costs with the measured rows
replaced, the device's name in their `source`), which `xlprobe plan --unit-costs` reads.
`--device cpu --small` runs the same code with tiny shapes in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xlprobe import costs
from xlprobe.io import write_json, write_text

log = logging.getLogger(__name__)

VOCAB = 250_880  # BLOOM's embedding rows
# name -> (hidden size, blocks, heads, embedding rows; 0 = the generated tokenizer's size)
SHAPES = {
    "bloom-560m": (1024, 24, 16, VOCAB),
    "bloom-1b7": (2048, 24, 16, VOCAB),
    "tiny": (64, 4, 4, 0),
}
PAPER_LAYER = 17  # the paper's probed layer of the 24-block models
# GPU memory (GiB) below which bloom-1b7 is left out: an estimate (3.4 GB of bfloat16 weights, twice
# over while a dtype's model replaces the last, plus activations), to be replaced by a measured peak.
MEMORY_FOR_1B7_GIB = 16
TABLE_COLUMNS = ["stage", "model", "setting", "rate", "peak memory", "check"]


@dataclass
class Settings:
    """What one run measures; `small` picks CI-sized values."""

    device: str
    models: list[str]
    dtypes: list[str]
    sentences: int  # dumped per model and dtype
    reference_sentences: int  # of those, dumped on the CPU in float32 for the agreement check
    dump_batch_size: int
    steps: int  # transfer updates per method
    batch_size: int  # transfer examples per update
    lr: float
    probe_rows: int
    probe_dim: int
    probe_epochs: int
    k: int
    sample_sentences: int  # similarity pairs and lm_loss sentences compared with the CPU
    tokenizer_vocab: int
    seed: int = 0
    skipped: list[str] = field(default_factory=list)


def settings_for(device: str, small: bool, models: Sequence[str] | None, dtypes: Sequence[str] | None,
                 batch_size: int | None) -> Settings:
    gpu = device.startswith("cuda")
    if small:
        chosen = list(models or ["tiny"])
        return Settings(device, chosen, list(dtypes or (["bfloat16", "float16"] if gpu else ["bfloat16"])),
                        sentences=60, reference_sentences=60, dump_batch_size=batch_size or 16, steps=40,
                        batch_size=8, lr=3e-3, probe_rows=1200, probe_dim=48, probe_epochs=30, k=6,
                        sample_sentences=24, tokenizer_vocab=400)
    chosen = list(models or ["bloom-560m", "bloom-1b7"])
    skipped = []
    if gpu and models is None:
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
        if total < MEMORY_FOR_1B7_GIB:
            chosen.remove("bloom-1b7")
            skipped.append(f"bloom-1b7: {total:.0f} GiB of GPU memory, fewer than {MEMORY_FOR_1B7_GIB}")
    return Settings(device, chosen, list(dtypes or (["bfloat16", "float16"] if gpu else ["float32"])),
                    sentences=2000, reference_sentences=100, dump_batch_size=batch_size or 16, steps=200,
                    batch_size=32, lr=1e-3, probe_rows=8000, probe_dim=1024, probe_epochs=100, k=20,
                    sample_sentences=64, tokenizer_vocab=4000, skipped=skipped)


# ----------------------------------------------------------------------------- data
@dataclass
class Corpus:
    """Generated sentences: a word table (sentence_id, word_id, form), a part-of-speech tag per word
    (a fixed function of the word, so that a tagger can learn it) and the plain text."""

    words: pd.DataFrame
    tags: list[str]
    text: list[str]


def generated_corpus(sentences: int, seed: int) -> Corpus:
    """Sentences of UD-like lengths (log-normal, median 14 words, as English EWT) over a Zipfian
    vocabulary of made-up words, each word with one of UD's 17 part-of-speech tags."""
    from xlprobe.transfer.data import UPOS

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéüñ"))
    lexicon = ["".join(rng.choice(letters, size=rng.integers(1, 11))) for _ in range(3000)]
    lexicon = list(dict.fromkeys(lexicon))
    tag_of = {word: UPOS[i] for word, i in zip(lexicon, rng.integers(0, len(UPOS), len(lexicon)))}
    frequency = 1.0 / np.arange(1, len(lexicon) + 1)
    lengths = np.clip(np.round(rng.lognormal(math.log(14), 0.6, sentences)), 1, 120).astype(int)
    rows, text = [], []
    for s, length in enumerate(lengths):
        forms = [lexicon[i] for i in rng.choice(len(lexicon), size=length, p=frequency / frequency.sum())]
        rows += [(f"s{s}", position + 1, form) for position, form in enumerate(forms)]
        text.append(" ".join(forms))
    words = pd.DataFrame(rows, columns=["sentence_id", "word_id", "form"])
    return Corpus(words, [tag_of[form] for form in words["form"]], text)


def planted_splits(rows: int, dim: int, classes: int, planted: Sequence[int], seed: int):
    """Gaussian features whose class shows only in the `planted` neurons (train/dev/test 8:1:1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    X = rng.normal(size=(rows, dim)).astype(np.float32)
    centres = rng.normal(scale=1.5, size=(classes, len(planted)))
    X[:, list(planted)] += centres[y].astype(np.float32)
    cut = [int(rows * 0.8), int(rows * 0.9)]
    return {name: (X[part], y[part]) for name, part in zip(
        ("train", "dev", "test"), (slice(0, cut[0]), slice(cut[0], cut[1]), slice(cut[1], None)))}


# ----------------------------------------------------------------------------- models
def save_random_model(name: str, tokenizer, directory: Path, seed: int, device: str = "cpu") -> Path:
    """A random-weight BLOOM of `name`'s shape, saved in bfloat16 with the tokenizer (a local checkpoint).

    bfloat16 weights are exact in float16 and float32, so every dtype computes with the same weights;
    BLOOM's released checkpoints are half precision too. Initialised on `device` (a GPU initialises
    bloom-1b7's 1.7 billion weights in a fraction of the CPU's time).
    """
    from transformers import BloomConfig, BloomForCausalLM

    hidden, blocks, heads, vocab = SHAPES[name]
    config = BloomConfig(vocab_size=vocab or len(tokenizer), hidden_size=hidden, n_layer=blocks, n_head=heads,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):
        model = BloomForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    del model
    release()
    tokenizer.save_pretrained(directory)
    return directory


def checkpoint_entry(name: str, models_dir: Path) -> dict[str, Any]:
    """The config entry (source local) whose step 0 is the saved random model."""
    return {"name": name, "source": "local", "path": str(models_dir / name / "{step}")}


def load(entry: dict[str, Any], device: str, dtype: str):
    """(causal LM, tokenizer) through the workflow's loader; its `base_model` is what the dumps run."""
    from xlprobe.checkpoints import load_checkpoint

    model, tokenizer, _ = load_checkpoint(entry, 0, device=device, dtype=dtype)
    return model, tokenizer


def release() -> None:
    """Return the memory of models the caller has deleted (the next stage's peak starts clean)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- measuring
@contextlib.contextmanager
def measured(device: torch.device) -> Iterator[dict[str, float]]:
    """Wall seconds and peak GPU memory (GiB; NaN on a CPU) of the block."""
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    yield result
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result["seconds"] = time.perf_counter() - start
    result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan


def matmul_bound(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """GFLOP/s of a square matrix product of `size` on `device`: the bound a dump's rate is held to."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    with measured(device) as timing:
        for _ in range(repeats):
            a @ b
    return 2 * size**3 * repeats / timing["seconds"] / 1e9


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"
    return f"{platform.processor() or 'CPU'} ({os.cpu_count()} CPUs)"


def largest_relative_difference(values: np.ndarray, reference: np.ndarray) -> float:
    """max over rows of ||values - reference|| / ||reference|| (rows: words' vectors)."""
    values, reference = values.astype(np.float64), reference.astype(np.float64)
    norms = np.maximum(np.linalg.norm(reference, axis=1), 1e-12)
    return float((np.linalg.norm(values - reference, axis=1) / norms).max())


# ----------------------------------------------------------------------------- stages
def reference_dump(entry, words: pd.DataFrame, layer: int, settings: Settings, work: Path) -> dict[str, Any]:
    """The CPU float32 dump of the reference sentences (`<model>.cpu.float32.npy` in `work`)."""
    from xlprobe.activations import dump_word_activations

    name = entry["name"]
    model, tokenizer = load(entry, "cpu", "float32")
    with measured(torch.device("cpu")) as timing:
        meta = dump_word_activations(model.base_model, tokenizer, words, {layer: work / f"{name}.cpu.float32.npy"},
                                     batch_size=settings.dump_batch_size, progress=False)
    del model
    release()
    return dump_row(name, "cpu", "float32", settings.dump_batch_size, layer, meta, timing, words,
                    bound=None, difference=None)


def device_dump(entry, dtype: str, words: pd.DataFrame, reference_words: pd.DataFrame, layer: int,
                settings: Settings, work: Path, bound_gflops: float) -> dict[str, Any]:
    """One dtype's dump of every sentence on the device, its first rows against the CPU reference."""
    from xlprobe.activations import dump_word_activations

    name, device = entry["name"], torch.device(settings.device)
    model, tokenizer = load(entry, settings.device, dtype)
    path = work / f"{name}.{device.type}.{dtype}.npy"
    # a first pass loads the kernels; the clock measures the second
    dump_word_activations(model.base_model, tokenizer, reference_words, {layer: path},
                          batch_size=settings.dump_batch_size, progress=False)
    with measured(device) as timing:
        meta = dump_word_activations(model.base_model, tokenizer, words, {layer: path},
                                     batch_size=settings.dump_batch_size, progress=False)
    del model
    release()
    reference = np.load(work / f"{name}.cpu.float32.npy")
    dumped = np.load(path, mmap_mode="r")[: len(reference_words)]
    difference = largest_relative_difference(np.asarray(dumped), reference)
    return dump_row(name, device.type, dtype, settings.dump_batch_size, layer, meta, timing, words, bound_gflops,
                    difference)


def dump_row(name, device, dtype, batch_size, layer, meta, timing, words, bound, difference) -> dict[str, Any]:
    hidden, blocks = SHAPES[name][0], SHAPES[name][1]
    seconds = timing["seconds"]
    # The plan's own accounting (costs.dump_seconds at 1 GFLOP/s gives GFLOP): its rate is this one.
    subwords_per_word = meta["subwords"] / len(words)
    gflop = costs.dump_seconds(len(words), hidden, layer, {"subwords_per_word": subwords_per_word,
                                                           "dump_gpu_gflops": 1.0})
    # What the blocks run actually multiply: 24 hidden^2 FLOP per subword in each block kept.
    run_gflop = meta["subwords"] * 24 * hidden**2 * min(layer, blocks) / 1e9
    return {
        "stage": "dump", "model": name, "device": device, "dtype": dtype, "batch_size": batch_size,
        "layer": layer, "words": len(words), "subwords": meta["subwords"], "seconds": seconds,
        "words_per_second": len(words) / seconds, "gflops": gflop / seconds,
        "fraction_of_bound": run_gflop / seconds / bound if bound else None, "bound_gflops": bound,
        "peak_gib": timing["peak_gib"], "largest_relative_difference": difference,
    }


def transfer_stage(entry, corpus: Corpus, settings: Settings, method: str) -> dict[str, Any]:
    """`steps` updates of POS tagging (tags a function of the word) with `method`, through fine_tune."""
    from xlprobe.transfer.data import UPOS
    from xlprobe.transfer.methods import load_classifier
    from xlprobe.transfer.train import encode, fine_tune

    name = entry["name"]
    device = torch.device(settings.device)
    row = {"stage": "transfer", "model": name, "device": device.type, "method": method, "steps": settings.steps,
           "batch_size": settings.batch_size, "lr": settings.lr}
    if method == "qlora":
        reason = qlora_missing(device)
        if reason:
            return {**row, "skipped": reason}
    directory = str(Path(entry["path"].format(step=0)))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    sentences = sentence_examples(corpus)
    needed = settings.steps * settings.batch_size
    train_examples = [sentences[i % len(sentences)] for i in range(needed)]
    dev_examples = sentences[: 4 * settings.batch_size]
    train = encode("udpos", tokenizer, train_examples, UPOS, 128)
    dev = encode("udpos", tokenizer, dev_examples, UPOS, 128)
    torch.manual_seed(settings.seed)
    with measured(device) as load_timing:
        model = load_classifier(directory, "udpos", UPOS, method, tokenizer.pad_token_id, device)
    interval = max(1, settings.steps // 5)
    with measured(device) as timing:
        result = fine_tune(model, "udpos", train, dev, UPOS, epochs=1.0, batch_size=settings.batch_size,
                           gradient_accumulation=1, lr=settings.lr, eval_interval=interval, device=device,
                           pad_id=tokenizer.pad_token_id, side=tokenizer.padding_side, seed=settings.seed)
    del model
    release()
    tokens = sum(len(ids) for ids in train.input_ids)
    params = parameters_of(entry)
    losses = [point["train_loss"] for point in result["history"]]
    return {**row, "seconds": timing["seconds"], "examples_per_second": needed / timing["seconds"],
            "tokens": tokens, "gflops": 6 * params * tokens / timing["seconds"] / 1e9,
            "peak_gib": max(timing["peak_gib"], load_timing["peak_gib"]), "losses": losses,
            "first_loss": losses[0], "last_loss": losses[-1], "dev_f1": result["best_dev"],
            "updates": result["updates"]}


def sentence_examples(corpus: Corpus) -> list[tuple[list[str], list[str]]]:
    words = corpus.words.assign(tag=corpus.tags)
    return [(group["form"].tolist(), group["tag"].tolist())
            for _, group in words.groupby("sentence_id", sort=False)]


def qlora_missing(device: torch.device) -> str | None:
    """Why QLoRA cannot run here, or None."""
    if device.type != "cuda":
        return f"needs CUDA (device {device})"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        return f"bitsandbytes not importable ({error})"
    return None


def parameters_of(entry: dict[str, Any]) -> int:
    """The parameters the plan counts for this model: its saved config.json, read as the plan reads it."""
    from xlprobe.model_shape import shape_of

    return shape_of(json.loads(Path(entry["path"].format(step=0), "config.json").read_text())).parameters


def shape_parameters(name: str) -> int:
    """The parameters of one of SHAPES (a generated tokenizer's size counted as none)."""
    from xlprobe.model_shape import shape_of

    hidden, blocks, heads, vocab = SHAPES[name]
    return shape_of({"model_type": "bloom", "hidden_size": hidden, "n_layer": blocks, "n_head": heads,
                     "vocab_size": vocab}).parameters


def probe_stage(settings: Settings) -> list[dict[str, Any]]:
    """The probe and greedy selection on planted data, on the device and on the CPU."""
    from xlprobe.probing import probe_attribute

    rng = np.random.default_rng(settings.seed)
    planted = sorted(rng.choice(settings.probe_dim, size=4, replace=False).tolist())
    splits = planted_splits(settings.probe_rows, settings.probe_dim, 4, planted, settings.seed)
    devices = ["cpu"] if settings.device == "cpu" else [settings.device, "cpu"]
    rows = []
    for device in devices:
        record = probe_attribute(splits, list("abcd"), k=settings.k, seed=settings.seed, device=device,
                                 progress=False, max_epochs=settings.probe_epochs,
                                 patience=settings.probe_epochs + 1)
        picks = record["selected"]
        rows.append({"stage": "probe", "device": device, "rows": settings.probe_rows, "dim": settings.probe_dim,
                     "classes": 4, "epochs": record["epochs"], "k": settings.k, "planted": planted,
                     "selected": picks, "planted_first": sorted(picks[: len(planted)]) == planted,
                     "test_mi_at_k": record["test_mi"][-1], "seconds": record["seconds"]})
    if len(rows) == 2:
        gpu, cpu = rows
        gpu["same_picks"] = gpu["selected"] == cpu["selected"]
        gpu["shared_picks"] = len(set(gpu["selected"]) & set(cpu["selected"]))
        gpu["test_mi_difference"] = abs(gpu["test_mi_at_k"] - cpu["test_mi_at_k"])
        gpu["speedup"] = cpu["seconds"] / gpu["seconds"]
    return rows


def similarity_stage(entry, corpus: Corpus, settings: Settings, work: Path, layer: int) -> list[dict[str, Any]]:
    """Parallel similarity and lm_loss: timed on the device over every sentence (lm_loss: up to 512),
    compared with CPU float32 on the first `sample_sentences`, in the device's automatic dtype.

    The 'translation' of a sentence is its words reversed: a pair shares its words, not their order.
    """
    from xlprobe.lm_loss import lm_loss
    from xlprobe.similarity import parallel_similarity

    text, compared = corpus.text, settings.sample_sentences
    files = {"xa": work / "xa.txt", "xb": work / "xb.txt"}
    files["xa"].write_text("\n".join(text) + "\n", encoding="utf-8")
    files["xb"].write_text("\n".join(" ".join(s.split()[::-1]) for s in text) + "\n", encoding="utf-8")
    files = {language: str(path) for language, path in files.items()}
    params = parameters_of(entry)
    runs = {}
    for device in dict.fromkeys([settings.device, "cpu"]):
        model, tokenizer = load(entry, device, "auto")

        def similarity(pairs, model=model, tokenizer=tokenizer):
            return parallel_similarity(model, tokenizer, files, [("xa", "xb")], [1, layer], max_pairs=pairs)

        def loss(sentences, model=model, tokenizer=tokenizer):
            return lm_loss(model, tokenizer, {"xa": text[:sentences]})

        # the device's rate over all sentences; the CPU's over the compared ones only
        pairs, sentences = (len(text), min(512, len(text))) if device == settings.device else (compared, compared)
        with measured(torch.device(device)) as timing:
            table = similarity(pairs)
        with measured(torch.device(device)) as loss_timing:
            losses = loss(sentences)
        runs[device] = {
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "pairs": pairs, "timing": timing, "sentences": sentences, "loss_timing": loss_timing,
            "tokens": sum(len(ids) for ids in tokenizer(text[:pairs] * 2)["input_ids"]),
            "predicted": losses["languages"]["xa"]["tokens"],
            "cosine": (table if pairs == compared else similarity(compared)).set_index(["layer", "pooling"])["cosine"],
            "loss": (losses if sentences == compared else loss(compared))["lm_loss"],
        }
        del model, similarity, loss
        release()
    rows, reference = [], runs["cpu"]
    for device, run in runs.items():
        timing, loss_timing = run["timing"], run["loss_timing"]
        rows.append({"stage": "similarity", "model": entry["name"], "device": device, "dtype": run["dtype"],
                     "pairs": run["pairs"], "tokens": run["tokens"], "seconds": timing["seconds"],
                     "gflops": 2 * params * run["tokens"] / timing["seconds"] / 1e9, "peak_gib": timing["peak_gib"],
                     "compared_pairs": compared, "cosine_last": float(run["cosine"][(layer, "last")]),
                     "cosine_difference": float((run["cosine"] - reference["cosine"]).abs().max())})
        rows.append({"stage": "lm_loss", "model": entry["name"], "device": device, "dtype": run["dtype"],
                     "sentences": run["sentences"], "tokens": run["predicted"], "seconds": loss_timing["seconds"],
                     "tokens_per_second": run["predicted"] / loss_timing["seconds"],
                     "peak_gib": loss_timing["peak_gib"], "compared_sentences": compared, "loss": run["loss"],
                     "loss_difference": abs(run["loss"] - reference["loss"])})
    return rows


# ----------------------------------------------------------------------------- reporting
def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One line per measurement, in TABLE_COLUMNS."""
    lines = []
    for r in results:
        if "failed" in r:
            setting = r.get("method", r.get("dtype", ""))
            lines.append([r["stage"], r["model"], setting, "failed", "", r["failed"]])
            continue
        memory = "" if r.get("peak_gib") is None or math.isnan(r["peak_gib"]) else f"{r['peak_gib']:.2f} GiB"
        if r["stage"] == "dump":
            setting = (f"{r['device']} {r['dtype']}, batch {r['batch_size']}, layer {r['layer']}, "
                       f"{r['subwords'] / r['words']:.2f} subwords/word")
            rate = f"{r['words_per_second']:,.0f} words/s, {r['gflops']:,.1f} GFLOP/s"
            if r["fraction_of_bound"] is not None:
                rate += f", {r['fraction_of_bound']:.1%} of bound"
            check = ("reference" if r["largest_relative_difference"] is None
                     else f"largest relative difference {r['largest_relative_difference']:.2e} vs CPU float32")
        elif r["stage"] == "transfer":
            setting = f"{r['method']}, {r['steps']} steps x {r['batch_size']}, lr {r['lr']:g}"
            if "skipped" in r:
                lines.append([r["stage"], r["model"], setting, "skipped", "", r["skipped"]])
                continue
            rate = f"{r['examples_per_second']:,.1f} examples/s, {r['gflops']:,.1f} GFLOP/s"
            check = f"train loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}"
        elif r["stage"] == "probe":
            setting = f"{r['device']}, {r['rows']} rows x D {r['dim']}, {r['epochs']} epochs, k {r['k']}"
            rate = f"{r['seconds']:.1f} s"
            check = f"planted neurons picked first: {'yes' if r['planted_first'] else 'no'}"
            if "speedup" in r:
                rate += f" ({r['speedup']:.1f}x the CPU)"
                check += (f"; picks {'identical' if r['same_picks'] else 'differ'} to the CPU's "
                          f"({r['shared_picks']} of {r['k']} shared), test MI at k differs by "
                          f"{r['test_mi_difference']:.4f}")
            lines.append([r["stage"], "planted", setting, rate, memory, check])
            continue
        elif r["stage"] == "similarity":
            setting = f"{r['device']} {r['dtype']}, {r['pairs']} pairs"
            rate = f"{r['gflops']:,.1f} GFLOP/s"
            check = (f"max cosine difference vs CPU float32 {r['cosine_difference']:.2e} "
                     f"({r['compared_pairs']} pairs)")
        else:
            setting = f"{r['device']} {r['dtype']}, {r['sentences']} sentences"
            rate = f"{r['tokens_per_second']:,.0f} tokens/s"
            check = (f"loss {r['loss']:.4f} nats, {r['loss_difference']:.2e} from CPU float32 "
                     f"({r['compared_sentences']} sentences)")
        lines.append([r["stage"], r["model"], setting, rate, memory, check])
    return lines


def markdown_table(lines: list[list[str]]) -> str:
    rows = [TABLE_COLUMNS, ["---"] * len(TABLE_COLUMNS), *lines]
    return "\n".join("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows) + "\n"


def measured_unit_costs(results: list[dict[str, Any]], gpu: bool) -> list[tuple[str, float, str, str]]:
    """(name, value, unit, note) rows from the results: the slowest model's rate, so that requests
    cover it. On a GPU the plan's GPU rates; on a CPU the CPU ones."""
    rows = []
    results = [r for r in results if "failed" not in r]

    def slowest(candidates, key, name, unit, describe):
        if candidates:
            worst = min(candidates, key=lambda r: r[key])
            notes = "; ".join(describe(r) for r in candidates)
            rows.append((name, worst[key], unit, f"slowest of: {notes}"))

    dumps = [r for r in results if r["stage"] == "dump" and (r["device"] != "cpu") == gpu]
    if gpu:  # the workflow's dtype on a GPU: the first asked for (bfloat16 by default)
        dumps = [r for r in dumps if r["dtype"] == dumps[0]["dtype"]] if dumps else []

    def dump_note(r):
        return (f"{r['model']} {r['dtype']} batch {r['batch_size']} layer {r['layer']}, "
                f"{r['subwords'] / r['words']:.2f} subwords/word, {r['gflops']:.1f} GFLOP/s")

    kind = "gpu" if gpu else "cpu"
    slowest(dumps, "gflops", f"dump_{kind}_gflops", "GFLOP/s", dump_note)
    slowest(dumps, "words_per_second", f"dump_{kind}_words_per_second", "words/s", dump_note)
    transfers = [r for r in results
                 if r["stage"] == "transfer" and "skipped" not in r and (r["device"] != "cpu") == gpu]
    if any(r["method"] == "qlora" for r in transfers):  # the paper's method, the workflow's default
        transfers = [r for r in transfers if r["method"] == "qlora"]

    def transfer_note(r):
        return (f"{r['model']} {r['method']} batch {r['batch_size']}, {r['tokens'] / r['steps'] / r['batch_size']:.0f}"
                f" tokens/example, {r['examples_per_second']:.1f} examples/s")

    slowest(transfers, "gflops", f"transfer_{kind}_gflops", "GFLOP/s", transfer_note)
    slowest(transfers, "examples_per_second", f"transfer_{kind}_examples_per_second", "examples/s", transfer_note)
    if gpu:
        similar = [r for r in results if r["stage"] == "similarity" and r["device"] != "cpu"]
        slowest(similar, "gflops", "similarity_gpu_gflops", "GFLOP/s",
                lambda r: f"{r['model']} {r['dtype']}, {r['tokens'] / r['pairs'] / 2:.0f} tokens/sentence")
    return rows


def write_unit_costs(path: Path, base: Path, measured_rows, source: str) -> pd.DataFrame:
    """The base table with the measured rows replaced (or appended); readable by costs.unit_costs."""
    table = pd.read_csv(base, sep="\t", keep_default_na=False)
    for name, value, unit, note in measured_rows:
        row = {"name": name, "value": value, "unit": unit, "source": source, "note": note}
        if name in set(table["name"]):
            table.loc[table["name"] == name, list(row)] = list(row.values())
        else:
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tsv", delete=False) as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.6g", quoting=csv.QUOTE_MINIMAL)
    os.replace(handle.name, path)
    costs.unit_costs(str(path))  # the plan must be able to read it
    return table


# ----------------------------------------------------------------------------- the run
def run(settings: Settings, out: Path, work: Path, base_costs: Path, budget: float | None = None,
        table: Path | None = None) -> dict[str, Any]:
    """Every stage in turn; the report files are rewritten after each one, so that a run stopped by
    its time limit leaves what it measured. A stage that fails is a line of the table (with its error)
    and the run goes on. A model whose stages would, at the previous model's pace scaled by size,
    end past `budget` seconds is left out. `table`: a second copy of the finished table (docs/gpu_check.md)."""
    from xlprobe.demo.pretrain import train_tokenizer
    from xlprobe.provenance import provenance

    started = time.perf_counter()
    device = torch.device(settings.device)
    name = device_name(device)
    stamp = datetime.date.today().isoformat()
    gpu = device.type == "cuda"

    def progress(message: str) -> None:
        print(f"[gpu-check {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {"device": name, "settings": asdict(settings), "complete": False}

    def write_report(final: bool = False) -> None:
        elapsed = time.perf_counter() - started
        header = (f"gpu-check on {name} ({settings.device}), {stamp}: random-weight models "
                  f"{', '.join(settings.models)}, {settings.sentences} generated sentences, {elapsed:.0f} s in all"
                  f"{'' if final else ' (unfinished)'}; torch {torch.__version__}.")
        if settings.skipped:
            header += " Left out: " + "; ".join(settings.skipped) + "."
        lines = table_rows(results)
        write_text(out / "gpu_check.md", header + "\n\n" + markdown_table(lines))
        if final and table:
            write_text(table, header + "\n\n" + markdown_table(lines))
        report.update(seconds=elapsed, results=results, complete=final, skipped=settings.skipped)
        if final:
            measured_rows = measured_unit_costs(results, gpu)
            write_unit_costs(out / "unit_costs.tsv", base_costs, measured_rows, f"measured {stamp} on {name}")
            report["unit_costs"] = [dict(zip(("name", "value", "unit", "note"), r)) for r in measured_rows]
            report["provenance"] = provenance({"gpu_check": asdict(settings)})
        write_json(out / "gpu_check.json", report)
        if final:
            print(header)
            print(pd.DataFrame(lines, columns=TABLE_COLUMNS).to_string(index=False))
            print(f"wrote {out / 'gpu_check.md'}, {out / 'gpu_check.json'}, {out / 'unit_costs.tsv'}")

    def stage(what: dict[str, Any], function, *args) -> None:
        progress(" ".join(str(v) for v in what.values()))
        try:
            made = function(*args)
        except Exception as error:  # one stage's failure is a result; the others still run
            log.exception("%s failed", what)
            made = [{**what, "failed": f"{type(error).__name__}: {error}"}]
        results.extend(made if isinstance(made, list) else [made])
        write_report()

    progress(f"{name}; models {settings.models}; dtypes {settings.dtypes}")
    corpus = generated_corpus(settings.sentences, settings.seed)
    (work / "text.txt").write_text("\n".join(corpus.text) + "\n", encoding="utf-8")
    corpus.words.to_csv(work / "words.tsv", sep="\t", index=False)  # what the dumps' rows are
    tokenizer = train_tokenizer([work / "text.txt"], work / "tokenizer", settings.tokenizer_vocab)
    first = corpus.words["sentence_id"].drop_duplicates().iloc[: settings.reference_sentences]
    reference_words = corpus.words[corpus.words["sentence_id"].isin(first)]
    bound = matmul_bound(device, torch.bfloat16 if gpu else torch.float32, 8192 if gpu else 512)
    report["bound_gflops"] = bound
    progress(f"matrix-product bound {bound:,.0f} GFLOP/s ({'bfloat16' if gpu else 'float32'})")
    previous = None  # (model, seconds) of the last model's stages
    for model_name in list(settings.models):
        model_started = time.perf_counter()
        if budget and previous:
            scale = shape_parameters(model_name) / shape_parameters(previous[0])
            expected = model_started - started + previous[1] * scale
            if expected > budget:
                settings.skipped.append(f"{model_name}: {previous[1]:.0f} s for {previous[0]} x {scale:.1f} "
                                        f"would end at {expected:.0f} s, past the budget of {budget:.0f} s")
                settings.models.remove(model_name)
                progress(settings.skipped[-1])
                continue
        entry = checkpoint_entry(model_name, work / "models")
        save_random_model(model_name, tokenizer, Path(entry["path"].format(step=0)), settings.seed, settings.device)
        blocks = SHAPES[model_name][1]
        layer = PAPER_LAYER if blocks > PAPER_LAYER else blocks - 1
        stage({"stage": "dump", "model": model_name, "dtype": "float32"}, reference_dump, entry, reference_words,
              layer, settings, work)
        for dtype in settings.dtypes:
            stage({"stage": "dump", "model": model_name, "dtype": dtype}, device_dump, entry, dtype, corpus.words,
                  reference_words, layer, settings, work, bound)
        for method in ("lora", "qlora"):
            stage({"stage": "transfer", "model": model_name, "method": method}, transfer_stage, entry, corpus,
                  settings, method)
        stage({"stage": "similarity", "model": model_name}, similarity_stage, entry, corpus, settings, work, layer)
        previous = (model_name, time.perf_counter() - model_started)
    stage({"stage": "probe", "model": "planted"}, probe_stage, settings)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    write_report(final=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda, cuda:N or cpu (default: cuda where there is one)")
    parser.add_argument("--out", required=True, help="folder for gpu_check.md, gpu_check.json, unit_costs.tsv")
    parser.add_argument("--small", action="store_true", help="tiny shapes and few steps (CI)")
    parser.add_argument("--models", nargs="+", choices=list(SHAPES), help="default: bloom-560m bloom-1b7")
    parser.add_argument("--dtypes", nargs="+", choices=["bfloat16", "float16", "float32"],
                        help="dump dtypes on the device (default: bfloat16 float16 on a GPU)")
    parser.add_argument("--batch-size", type=int, help="dump batch size (default: activations.batch_size, 16)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: torch's own; --small: 1, for a shared CI machine)")
    parser.add_argument("--table", help="also write the finished table here (docs/gpu_check.md: docs/gpu.md)")
    parser.add_argument("--budget", type=float, default=450,
                        help="seconds: a model whose stages would end later is left out (default 450)")
    parser.add_argument("--workdir", help="keep the models, tokenizer and dumps here (default: a temporary folder)")
    parser.add_argument("--unit-costs", default=str(costs.DATA / "unit_costs.tsv"),
                        help="the table whose other rows the written unit costs keep (default: the shipped one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU "
                     "(install a CUDA build: docs/gpu.md)")
    settings = settings_for(args.device, args.small, args.models, args.dtypes, args.batch_size)
    threads = args.threads or (1 if args.small else None)
    if threads:
        torch.set_num_threads(threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if args.workdir:
            work = Path(args.workdir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-")))
        report = run(settings, out, work, Path(args.unit_costs), args.budget, args.table and Path(args.table))
    failed = [r for r in report["results"] if "failed" in r]
    for r in failed:
        print(f"gpu-check: {r['stage']} {r['model']} {r.get('method', '')} failed: {r['failed']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
