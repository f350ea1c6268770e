"""What a job costs, from measured unit costs: the resources a rule asks for, and `xlprobe plan`.

Every number here is an estimate: unit costs (data/unit_costs.tsv, written by
benchmarks/bench_unit_costs.py; each row says whether it was measured, where, or assumed) times the
size of a job's input. A request adds a safety factor on top: a SLURM job that outruns its time limit
loses all its work, one that asks for too much only waits longer in the queue.

Probe job (one model, step, layer, treebank), attributes a with train/dev/test rows n_a, m_a, t_a and
C_a classes, activations of width D:
    epochs  = min(max_epochs, best_epoch + patience)       best_epoch: measured (unit costs)
    seconds = sum_a epochs * n_a * D * (p + q * C_a)        training (p, q: ns per row and neuron)
            + sum_a m_a * D * C_a * min(k, D) * g           greedy selection (g: ns)
    runtime = ceil(RUNTIME_SAFETY * seconds / 60) + START_MINUTES
    mem_mb  = MEMORY_SAFETY * (BASE_MB + words * WORD_TABLE_BYTES / 1e6
                               + max_a [4 (n_a + m_a + t_a) D + 8 (m_a + t_a) D + min(4 C_a D m_a, 2 GiB)] / 1e6)
Without a word table yet, the attributes are English EWT's shape scaled to the treebank's token count
(data/treebank_sizes.tsv): see `estimated_attribute_sizes`.

This module knows nothing of Snakemake and imports neither torch nor pandas: the workflow calls it
for every job it schedules, and `xlprobe plan` must answer in seconds.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from xlprobe.model_shape import ModelShape

DATA = files("xlprobe") / "data"
RUNTIME_SAFETY = 2.0
MEMORY_SAFETY = 1.5
START_MINUTES = 10  # interpreter, imports, loading a checkpoint, reading the tables
BASE_MB = 1500  # Python with torch, numpy, pandas loaded (measured RSS ~1.0 GB) plus slack
WORD_TABLE_BYTES = 400  # one row of a word table in pandas, all columns as strings
GREEDY_CACHE_BYTES = 2 * 2**30  # greedy_select's max_cache_bytes
# What a job asks for when its model's shape is unknown (before its activations exist): fixed
# requests, (runtime in minutes, mem_mb).
UNSIZED = {"probe": (240, 8000), "dump": (240, 16000), "transfer": (720, 16000)}
# English EWT at the paper's settings: 5 kept attributes; part of speech covers 82% of the training
# tokens (17 classes), the other four 14% each (about 3 classes). Used to size unbuilt treebanks.
EWT_ATTRIBUTE_SHAPE = [(0.82, 17)] + [(0.14, 3)] * 4
# Transfer data sizes (examples): MultiNLI train, XTREME UD-POS English train; evaluation per target.
TRANSFER_TRAIN = {"xnli": 392_702, "udpos": 21_253}
TRANSFER_EVAL = {"xnli": 5_010, "udpos": 1_000}


@dataclass(frozen=True)
class AttributeSize:
    train: int
    dev: int
    test: int
    classes: int


# ----------------------------------------------------------------------------- tables
@functools.cache
def unit_costs(path: str | os.PathLike | None = None) -> dict[str, float]:
    """name -> value of the unit-cost table."""
    path = Path(path) if path else Path(str(DATA / "unit_costs.tsv"))
    with open(path, newline="") as handle:
        table = {row["name"]: float(row["value"]) for row in csv.DictReader(handle, delimiter="\t")}
    needed = {
        "probe_epoch_ns_per_row_dim",
        "probe_epoch_ns_per_row_dim_class",
        "greedy_ns_per_row_dim_class_pick",
        "probe_best_epoch",
        "dump_gpu_gflops",
        "dump_cpu_gflops",
        "subwords_per_word",
        "transfer_gpu_gflops",
        "similarity_gpu_gflops",
        "similarity_tokens_per_sentence",
        "xnli_tokens_per_example",
        "udpos_tokens_per_example",
        "probe_transfer_cpu_gflops",
    }
    missing = sorted(needed - set(table))
    if missing:
        raise ValueError(f"{path}: missing unit costs {missing} (benchmarks/bench_unit_costs.py writes them)")
    return table


@functools.cache
def treebank_tokens() -> dict[str, int]:
    """UD 2.1 folder -> surface tokens (the word table's rows), from data/treebank_sizes.tsv."""
    with open(str(DATA / "treebank_sizes.tsv"), newline="") as handle:
        return {row["folder"]: int(row["tokens"]) for row in csv.DictReader(handle, delimiter="\t")}


def tokens_of(folder: str, strict: bool = True) -> int:
    """Documented tokens of a UD 2.1 treebank folder; if unknown, an error (strict) or the largest size."""
    sizes = treebank_tokens()
    if folder not in sizes and not strict:
        return max(sizes.values())
    if folder not in sizes:
        raise ValueError(
            f"treebank folder {folder!r}: size unknown (add it to {DATA / 'treebank_sizes.tsv'}, "
            "or build its word table first)"
        )
    return sizes[folder]


@functools.cache
def _attribute_sizes(path: str, mtime: float) -> tuple[AttributeSize, ...]:
    sums: dict[str, list[int]] = {}
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle, delimiter="\t"), 2):
            try:
                if row["kept"].strip().lower() not in ("true", "1"):
                    continue
                counts = [int(row[split]) for split in ("train", "dev", "test")]
            except (KeyError, ValueError, AttributeError) as error:
                raise ValueError(
                    f"{path}, line {line}: needs attribute, train, dev, test, kept ({error})"
                ) from None
            total = sums.setdefault(row["attribute"], [0, 0, 0, 0])
            total[:3] = [a + b for a, b in zip(total[:3], counts)]
            total[3] += 1
    return tuple(AttributeSize(*s) for s in sums.values() if s[3] >= 2)


def attribute_sizes(attributes_path: str | os.PathLike) -> list[AttributeSize]:
    """Rows per split and classes of every attribute an attribute table keeps (>= 2 kept values)."""
    path = os.fspath(attributes_path)
    return list(_attribute_sizes(path, os.path.getmtime(path)))


def estimated_attribute_sizes(tokens: int, split: Mapping[str, float] | None = None) -> list[AttributeSize]:
    """Attributes of a treebank of `tokens` words whose word table is not built: EWT's shape, scaled."""
    split = split or {"train": 0.8, "dev": 0.1, "test": 0.1}
    return [
        AttributeSize(*(round(tokens * split[s] * share) for s in ("train", "dev", "test")), classes)
        for share, classes in EWT_ATTRIBUTE_SHAPE
    ]


def npy_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape of a .npy file, without reading its data (memory-mapped)."""
    return np.load(path, mmap_mode="r").shape


# ----------------------------------------------------------------------------- models
def dumped_width(shape: ModelShape, activations: Mapping[str, Any]) -> int:
    """D of a dump: the hidden size, or the MLP's width (config.json's intermediate size) at the mlp site.
    For estimates only: the probes read D from the .npy."""
    return shape.mlp_width if activations["site"] == "mlp" else shape.hidden


# ----------------------------------------------------------------------------- per job
def probe_epochs(probe_config: Mapping[str, Any], costs: Mapping[str, float]) -> int:
    return int(min(probe_config["max_epochs"], costs["probe_best_epoch"] + probe_config["patience"]))


def probe_seconds(
    sizes: list[AttributeSize], dim: int, probe_config: Mapping[str, Any], costs: Mapping[str, float]
) -> float:
    """Estimated seconds of one probe job on one CPU thread (see the module docstring): its
    `replicates` probes one after another."""
    epochs, k = probe_epochs(probe_config, costs), min(int(probe_config["k"]), dim)
    p, q = costs["probe_epoch_ns_per_row_dim"], costs["probe_epoch_ns_per_row_dim_class"]
    g = costs["greedy_ns_per_row_dim_class_pick"]
    train = sum(epochs * s.train * dim * (p + q * s.classes) for s in sizes)
    greedy = sum(s.dev * dim * s.classes * k * g for s in sizes)
    return int(probe_config["replicates"]) * (train + greedy) * 1e-9


def probe_memory_mb(sizes: list[AttributeSize], dim: int, words: int) -> float:
    """Estimated peak memory (MB) of one probe job, before the safety factor."""
    per_attribute = [
        4 * (s.train + s.dev + s.test) * dim
        + 8 * (s.dev + s.test) * dim
        + min(4 * s.classes * dim * s.dev, GREEDY_CACHE_BYTES)
        for s in sizes
    ]
    return BASE_MB + words * WORD_TABLE_BYTES / 1e6 + max(per_attribute, default=0) / 1e6


def request(seconds: float, mem_mb: float) -> dict[str, int]:
    """SLURM-ready request: runtime (minutes) and mem_mb, with the safety factors."""
    return {
        "runtime": math.ceil(RUNTIME_SAFETY * seconds / 60) + START_MINUTES,
        "mem_mb": int(math.ceil(MEMORY_SAFETY * mem_mb / 100) * 100),
    }


def probe_request(
    probe_config: Mapping[str, Any],
    *,
    attributes_path: str | os.PathLike | None = None,
    activations_path: str | os.PathLike | None = None,
    tokens: int | None = None,
    dim: int | None = None,
    costs: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """runtime/mem_mb for a probe job: from its input files where they exist, else from `tokens`, `dim`."""
    costs = costs or unit_costs()
    if activations_path and os.path.exists(activations_path):
        tokens, dim = npy_shape(activations_path)
    if dim is None:
        return unsized("probe")
    if attributes_path and os.path.exists(attributes_path):
        sizes = attribute_sizes(attributes_path)
    else:
        sizes = estimated_attribute_sizes(tokens)
    return request(probe_seconds(sizes, dim, probe_config, costs), probe_memory_mb(sizes, dim, tokens))


def unsized(rule: str) -> dict[str, int]:
    runtime, mem_mb = UNSIZED[rule]
    return {"runtime": runtime, "mem_mb": mem_mb}


def dump_seconds(
    tokens: int, hidden: int, max_layer: int, costs: Mapping[str, float], gpu: bool = True
) -> float:
    """Forward passes up to the deepest dumped layer: 24 hidden^2 FLOP per subword and block."""
    flops = tokens * costs["subwords_per_word"] * 24 * hidden**2 * max(max_layer - 1, 1)
    return flops / (costs["dump_gpu_gflops" if gpu else "dump_cpu_gflops"] * 1e9)


def dump_request(
    tokens: int, hidden: int, params: int, layers: list[int], costs=None, width: int | None = None
) -> dict[str, int]:
    """runtime/mem_mb for a dump job: float32 weights, the float16 output of every layer (`width`
    values per word: `dumped_width`, the hidden size unless another site is dumped), the table."""
    costs = costs or unit_costs()
    width = width or hidden
    memory = BASE_MB + 4 * params / 1e6 + tokens * (2 * width * len(layers) + WORD_TABLE_BYTES) / 1e6
    return request(dump_seconds(tokens, hidden, max(layers), costs), memory)


def transfer_seconds(task: Mapping[str, Any], settings: Mapping[str, Any], params: int, costs) -> float:
    """(Q)LoRA training (6 FLOP per parameter and token, forward + backward) plus evaluation (2)."""
    kind = task["type"]
    epochs = settings["epochs"]
    epochs = epochs[kind] if isinstance(epochs, Mapping) else epochs
    train = min(TRANSFER_TRAIN[kind], settings.get("max_train_examples") or math.inf)
    evaluate = TRANSFER_EVAL[kind] * (len(task.get("targets", [])) + 1)
    tokens = min(costs[f"{kind}_tokens_per_example"], settings["max_length"])
    return (6 * train * epochs + 2 * evaluate) * params * tokens / (costs["transfer_gpu_gflops"] * 1e9)


def transfer_request(task, settings, params: int, costs=None) -> dict[str, int]:
    costs = costs or unit_costs()
    return request(transfer_seconds(task, settings, params, costs), BASE_MB + 8 * params / 1e6)


def forward_seconds(sentences: int, params: int, costs) -> float:
    """GPU time of forward passes over `sentences` (2 FLOP per parameter and token)."""
    flops = 2 * params * sentences * costs["similarity_tokens_per_sentence"]
    return flops / (costs["similarity_gpu_gflops"] * 1e9)


def similarity_seconds(similarity: Mapping[str, Any], params: int, costs) -> float:
    sentences = 2 * len(similarity.get("pairs", [])) * similarity.get("max_pairs", 30_000)
    return forward_seconds(sentences, params, costs)


def lm_loss_seconds(similarity: Mapping[str, Any], checks: Mapping[str, Any], params: int, costs,
                    treebanks: Mapping[str, Any] | None = None) -> float:
    """One lm_loss job: a forward pass over `lm_loss_sentences` sentences of each treebank language and
    of each similarity language (priced as the similarity's forward passes)."""
    languages = len({spec["language"] for spec in (treebanks or {}).values()})
    languages += len({language for pair in similarity.get("pairs", []) for language in pair})
    sentences = languages * checks["lm_loss_sentences"]
    return forward_seconds(sentences, params, costs)


def probe_transfer_seconds(
    treebanks: list[list[AttributeSize]], dim: int, settings: Mapping[str, Any], costs: Mapping[str, float]
) -> float:
    """One probe_transfer job (one model, step, layer): per treebank and attribute, its readout and
    `permutations` nulls fitted together, and its own readout, each max_iter L-BFGS iterations of
    6 n D C FLOP over at most max_train_words train rows (an upper bound: a treebank's readouts for
    classes another language lacks are fitted again, and L-BFGS often stops before max_iter)."""
    models = int(settings["permutations"]) + 2
    flops = sum(
        int(settings["max_iter"]) * 6 * min(s.train, int(settings["max_train_words"])) * dim * s.classes * models
        for sizes in treebanks
        for s in sizes
    )
    return flops / (costs["probe_transfer_cpu_gflops"] * 1e9)


def probe_transfer_request(
    treebanks: list[list[AttributeSize]], words: int, dim: int, settings: Mapping[str, Any], costs=None
) -> dict[str, int]:
    """runtime/mem_mb for a probe_transfer job: `words` is the word tables' rows over its treebanks."""
    costs = costs or unit_costs()
    rows = int(settings["max_train_words"])
    largest = max((max(rows, s.test) * s.classes for sizes in treebanks for s in sizes), default=0)
    memory = (BASE_MB + words * WORD_TABLE_BYTES / 1e6 + 4 * 2 * rows * dim / 1e6
              + 3 * 4 * largest * (int(settings["permutations"]) + 1) / 1e6)
    return request(probe_transfer_seconds(treebanks, dim, settings, costs), memory)

