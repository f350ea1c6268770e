"""Cosine similarity of parallel sentences at every layer (the paper's supporting analysis).

For each configured language pair, each sentence and its translation go through the base model (no
LM head; loaded and run by the dumps' code, `activations.load_base_model` and `hidden_states`); per layer
(L = hidden_states[L-1], layer 1 the embedding output) we average over pairs the cosine of the
last-token vectors (the paper's) and of the mean-pooled vectors.

Beside the cosine, parallel-sentence retrieval (as MEXA, arXiv 2410.05873): among the first
`retrieval_sample` pairs, the share of sentences whose translation is their nearest neighbour by
cosine, source to target and target to source averaged (`retrieval`, over `retrieval_pairs` pairs).
Its null pairs the sentences at random: `retrieval_null` is the mean over RETRIEVAL_PERMUTATIONS
seeded permutations of the target side (1/n in expectation), `retrieval_p` the permutation p-value
(1 + #{null >= retrieval}) / (1 + permutations).

Parallel text comes from `similarity.files`, whose keys are a language or a pair `<src>-<tgt>`:
- a language -> a text file, line i aligned with line i of every other language's file (the demo's
  parallel/<code>.txt, or sentences extracted from PUD);
- a pair -> [source file, target file] of aligned lines (OPUS-style train.en/train.xx, Tatoeba);
- either -> a `.tsv` with a header row naming language columns (PUD's pud_parallel.tsv).
Pairs without files come from `similarity.hub`, a `datasets` translation corpus (the paper: OPUS-100).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xlprobe.activations import check_layers, hidden_states, load_base_model
from xlprobe.identity import model_point, with_identity
from xlprobe.inputs import hub_config, pair_from_hub, similarity_files
from xlprobe.io import read_tsv, write_json, write_tsv
from xlprobe.provenance import provenance, sidecar_path

log = logging.getLogger(__name__)

COLUMNS = ["source", "target", "layer", "pooling", "cosine", "pairs",
           "retrieval", "retrieval_pairs", "retrieval_null", "retrieval_p"]
SENTENCE_POOLINGS = ("last", "mean")
RETRIEVAL_SAMPLE = 1000
RETRIEVAL_PERMUTATIONS = 1000


# ----------------------------------------------------------------------------- parallel text
def _read_lines(path: str | os.PathLike) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n").strip() for line in handle]


def _read_column(path: str | os.PathLike, language: str) -> list[str]:
    table = read_tsv(path, dtype=str, quoting=3)
    if language not in table.columns:
        raise ValueError(f"{path}: no column '{language}' (columns: {', '.join(table.columns)})")
    return table[language].fillna("").str.strip().tolist()


def _side(path: str | os.PathLike, language: str) -> list[str]:
    return _read_column(path, language) if str(path).endswith(".tsv") else _read_lines(path)


def hub_parallel(repo: str, source: str, target: str, max_pairs: int | None, cache_dir: str | None = None):
    """Aligned sentences from a `datasets` translation corpus such as OPUS-100 (config "ar-en"): from the
    cache that rule prefetch_dataset filled, or the network where there is one."""
    from xlprobe.hubdata import load_split

    split = "train" if max_pairs is None else f"train[:{max_pairs}]"
    rows = load_split(repo, hub_config(source, target), split, cache_dir)
    return [r["translation"][source] for r in rows], [r["translation"][target] for r in rows]


def parallel_sentences(
    files: dict[str, Any], source: str, target: str, max_pairs: int | None = None,
    hub: str | None = None, cache_dir: str | None = None,
) -> tuple[list[str], list[str]]:
    """The first `max_pairs` aligned (source, target) sentence pairs in which neither side is empty.

    Pairs without files come from the `hub` translation dataset where one is named.
    """
    pair_key = f"{source}-{target}"
    if pair_from_hub(files, source, target, hub):
        left, right = hub_parallel(hub, source, target, max_pairs, cache_dir)
        return _non_empty(left, right, max_pairs, f"{hub} {pair_key}")
    if pair_key in files:
        spec = files[pair_key]
        if isinstance(spec, str):
            spec = [spec, spec]
        if len(spec) != 2:
            raise ValueError(f"similarity.files.{pair_key}: expected [source file, target file], got {spec}")
        paths = spec
    elif source in files and target in files:
        paths = [files[source], files[target]]
    else:
        raise ValueError(
            f"similarity.files: no parallel text for {source}-{target}: give '{pair_key}' or both "
            f"'{source}' and '{target}' (keys present: {', '.join(files) or 'none'})"
        )
    left, right = _side(paths[0], source), _side(paths[1], target)
    if len(left) != len(right):
        raise ValueError(
            f"similarity.files: {paths[0]} has {len(left)} lines but {paths[1]} has {len(right)}; "
            "line i of each must be a translation of the other"
        )
    return _non_empty(left, right, max_pairs, f"{source}-{target} in {paths}")


def _non_empty(left: list[str], right: list[str], max_pairs: int | None, where: str) -> tuple[list[str], list[str]]:
    pairs = [(a.strip(), b.strip()) for a, b in zip(left, right) if a.strip() and b.strip()]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    if not pairs:
        raise ValueError(f"similarity: no non-empty sentence pairs for {where}")
    return [a for a, _ in pairs], [b for _, b in pairs]


# ----------------------------------------------------------------------------- vectors
@torch.no_grad()
def sentence_vectors(
    model, tokenizer, sentences: Sequence[str], layers: Sequence[int], batch_size: int = 32,
    max_length: int = 512,
) -> dict[str, np.ndarray]:
    """Pooled vectors per layer: {"last": [len(layers), n, D], "mean": same}, float32, input order.

    Sentences are batched by length with padding; the last token is the last one the attention mask
    keeps, so left and right padding give the same vectors.
    """
    layers = check_layers(model, layers, "similarity.layers")
    model.eval()
    device = next(model.parameters()).device
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out = {p: np.zeros((len(layers), len(sentences), model.config.hidden_size), np.float32) for p in SENTENCE_POOLINGS}
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = tokenizer(
            [sentences[i] for i in chosen], padding=True, truncation=True, max_length=max_length,
            return_tensors="pt",
        ).to(device)
        mask = batch["attention_mask"]
        hidden = hidden_states(model, batch["input_ids"], mask, layers)
        width = mask.shape[1]
        last = width - 1 - mask.flip(1).float().argmax(1)  # position of the last kept token
        rows = torch.arange(len(chosen), device=device)
        weights = (mask / mask.sum(1, keepdim=True)).unsqueeze(-1).float()
        for j, layer in enumerate(layers):
            states = hidden[layer - 1].float()
            out["last"][j, chosen] = states[rows, last].cpu().numpy()
            out["mean"][j, chosen] = (states * weights).sum(1).cpu().numpy()
    return out


def mean_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over rows of the cosine of a[..., i, :] and b[..., i, :] (leading axes kept)."""
    dot = (a * b).sum(-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (dot / np.maximum(norms, 1e-12)).mean(-1)


def nearest_neighbours(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For [n, D] rows of a and b: each a-row's nearest b-row by cosine, and each b-row's nearest a-row."""
    unit_a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    unit_b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    cosines = unit_a @ unit_b.T
    return cosines.argmax(1), cosines.argmax(0)


def retrieval(
    a: np.ndarray, b: np.ndarray, permutations: int = RETRIEVAL_PERMUTATIONS, seed: int = 0
) -> dict[str, float]:
    """Row i of a and b are translations: the share of rows whose nearest neighbour on the other side
    is their translation (both directions averaged), the mean of that share under random pairings of
    the rows (permutations of b, the same nearest neighbours), and the permutation p-value."""
    forward, backward = nearest_neighbours(a, b)
    rows = np.arange(len(a))

    def hits(partner: np.ndarray) -> np.ndarray:
        """Share of hits when a-row i is paired with b-row partner[..., i]."""
        inverse = np.argsort(partner, axis=-1)
        return ((forward == partner).mean(-1) + (backward == inverse).mean(-1)) / 2

    observed = float(hits(rows))
    rng = np.random.default_rng(seed)
    null = hits(np.argsort(rng.random((permutations, len(a))), axis=1)) if permutations else np.array([])
    return {
        "retrieval": observed,
        "retrieval_pairs": len(a),
        "retrieval_null": float(null.mean()) if permutations else float("nan"),
        "retrieval_p": float((1 + (null >= observed).sum()) / (1 + permutations)) if permutations else float("nan"),
    }


def parallel_similarity(
    model, tokenizer, files: dict[str, Any], pairs: Sequence[Sequence[str]], layers: Sequence[int] | None = None,
    max_pairs: int | None = None, batch_size: int = 32, hub: str | None = None, cache_dir: str | None = None,
    retrieval_sample: int = RETRIEVAL_SAMPLE, seed: int = 0,
) -> pd.DataFrame:
    """Per language pair, layer and pooling: the mean cosine over up to `max_pairs` parallel sentences,
    and retrieval among the first `retrieval_sample` of them."""
    n_states = model.config.num_hidden_layers + 1
    layers = check_layers(model, layers or range(1, n_states + 1), "similarity.layers")
    rows = []
    for source, target in tqdm(pairs, desc="language pairs"):
        left, right = parallel_sentences(files, source, target, max_pairs, hub, cache_dir)
        # Chunks bound memory at max_pairs x D x layers; the mean is accumulated across chunks.
        totals = {p: np.zeros(len(layers)) for p in SENTENCE_POOLINGS}
        # The retrieval sample's vectors per pooling: [layers, sample, D] for each side.
        sample = {p: ([], []) for p in SENTENCE_POOLINGS}
        chunk = 1024
        for start in range(0, len(left), chunk):
            a = sentence_vectors(model, tokenizer, left[start : start + chunk], layers, batch_size)
            b = sentence_vectors(model, tokenizer, right[start : start + chunk], layers, batch_size)
            kept = max(0, min(chunk, retrieval_sample - start))
            for p in SENTENCE_POOLINGS:
                totals[p] += mean_cosine(a[p], b[p]) * len(left[start : start + chunk])
                if kept:
                    sample[p][0].append(a[p][:, :kept])
                    sample[p][1].append(b[p][:, :kept])
        for p in SENTENCE_POOLINGS:
            a, b = (np.concatenate(side, axis=1) for side in sample[p])
            for j, (layer, total) in enumerate(zip(layers, totals[p])):
                rows.append({"source": source, "target": target, "layer": layer, "pooling": p,
                             "cosine": total / len(left), "pairs": len(left), **retrieval(a[j], b[j], seed=seed)})
        log.info("%s-%s: %d pairs, last-token cosine by layer %s, retrieval %s", source, target, len(left),
                 np.round(totals["last"] / len(left), 3).tolist(),
                 [round(r["retrieval"], 3) for r in rows[-2 * len(layers) : -len(layers)]])
    return pd.DataFrame(rows, columns=COLUMNS)


# ----------------------------------------------------------------------------- the stage
def run_similarity(
    model: dict[str, Any],
    step: int | str,
    settings: dict[str, Any],
    output: str | os.PathLike,
    demo_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The workflow stage: load (model, step), score every configured pair, write the TSV.

    `settings` is the config's `similarity:` section. Text comes from `files`, else from the `hub`
    translation dataset (OPUS-100 for the paper), else from the demo's parallel files.
    Provenance, with the checkpoint record, goes to the sidecar `sidecar_path(output)`; the TSV
    keeps the contract's columns after the result's identity (model, seed, step: xlprobe.identity).
    """
    pairs = settings.get("pairs") or []
    if not pairs:
        raise ValueError("similarity.pairs: no language pairs configured")
    hub = settings.get("hub")
    files = similarity_files(settings, demo_dir)  # the DAG declares the same files (rules/common.smk)
    net, tokenizer, checkpoint = load_base_model(model, step, demo_dir=demo_dir, cache_dir=cache_dir,
                                                 device=settings["device"],
                                                 dtype=settings["dtype"])
    table = parallel_similarity(
        net, tokenizer, files, pairs, settings.get("layers"), settings.get("max_pairs"),
        settings["batch_size"], hub, cache_dir, settings["retrieval_sample"], seed,
    )
    point = model_point(model, step)
    table = with_identity(table, point)
    write_json(
        sidecar_path(output),
        provenance({"model": model, "similarity": settings, "seed": seed}, point=point, checkpoint=checkpoint,
                   inputs=files),
    )
    write_tsv(output, table)
    return table


def similarity_cli(args) -> int:
    """`xlprobe similarity`: the stage on a model directory."""
    from transformers import AutoModel, AutoTokenizer

    files: dict[str, Any] = {}
    for item in args.file:
        key, _, value = item.partition("=")
        paths = value.split(",")
        files[key] = paths[0] if len(paths) == 1 else paths
    model = AutoModel.from_pretrained(args.checkpoint)  # the base model: no LM head
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    pairs = [pair.split("-", 1) for pair in args.pair]
    table = parallel_similarity(model, tokenizer, files, pairs, args.layers, args.max_pairs, args.batch_size)
    write_tsv(args.out, table)
    print(table.to_string(index=False))
    return 0
