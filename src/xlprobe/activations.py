"""Word representations: every configured layer from one batched forward pass, streamed to disk.

Pooling modes:
- `paper`: each word tokenized alone and the pieces concatenated, no BOS (what the released code
  did, so the model sees the words glued together without spaces);
- `natural`: the sentence with its spaces, words mapped to subwords by the fast tokenizer's offsets.
A word's vector is the mean of its subwords' vectors.

Sites (`activations.site`):
- `residual` (the paper's): layer L is `hidden_states[L-1]` (layer 1 is the embedding output);
- `mlp`: layer L is the MLP neurons of decoder block L (1-based), the input of its down projection
  (BLOOM: gelu(dense_h_to_4h(x)), 4 x hidden wide; Llama family: act(gate_proj(x)) * up_proj(x),
  intermediate_size wide), read by a forward pre-hook; architectures in MLP_DOWN_PROJECTIONS. The residual stream
  has no privileged basis (any rotation of it is an equivalent model), so a neuron-level overlap can
  miss alignment there; the elementwise nonlinearity gives the MLP's neurons one.

Batching is exact: sentences are right-padded and masked. Causal attention means that a real token
never sees the padding after it, and BLOOM's ALiBi positions come from the mask's cumulative sum,
so they equal the unpadded ones. The tests compare against one sentence at a time.

Output: one float16 `.npy` per layer, row i = word table row i, written batch by batch with
positioned writes into a pre-sized file (memory bounded by the batch, not the treebank), under a
temporary name renamed at the end. Rows of skipped sentences stay zero.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xlprobe.integrity import check_checkpoint, file_record
from xlprobe.io import atomic_path, write_json
from xlprobe.provenance import provenance
from xlprobe.wordtable import read_word_table, sentence_rows

log = logging.getLogger(__name__)

WORD_POOLINGS = ("paper", "natural")
SITES = ("residual", "mlp")
# The mlp site per architecture (config.model_type): the block's MLP module and, inside it, the down
# projection whose input is the MLP's neurons. Named through the MLP module because a bare name can be
# the attention's too (GPT-2's c_proj). Llama family: the input of down_proj is act(gate_proj) * up_proj.
MLP_DOWN_PROJECTIONS = {
    "bloom": ("mlp", "dense_4h_to_h"),
    "gpt_neox": ("mlp", "dense_4h_to_h"),
    "gpt2": ("mlp", "c_proj"),
    "llama": ("mlp", "down_proj"),
    "olmo": ("mlp", "down_proj"),
    "olmo2": ("mlp", "down_proj"),
    "qwen2": ("mlp", "down_proj"),
}


@dataclass
class WordTableSentence:
    id: Any
    forms: list[str]
    rows: np.ndarray  # word table row of each word, in word order


@dataclass
class Encoded:
    """A sentence's subword ids and which subword belongs to which word (pairs; a subword may serve two)."""

    ids: np.ndarray
    token: np.ndarray  # subword position of each pair
    word: np.ndarray  # word position of each pair


# ----------------------------------------------------------------------------- word table
def sentences_from_table(words: pd.DataFrame, source: str = "word table") -> list[WordTableSentence]:
    """Group word table rows by sentence_id (first-appearance order), words ordered by word_id."""
    missing = {"sentence_id", "word_id", "form"} - set(words.columns)
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    empty = words["form"].isna() | (words["form"].astype(str) == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(f"{source}: empty form in data row {row + 1} (sentence {words['sentence_id'].iloc[row]})")
    forms = words["form"].astype(str).to_numpy()
    return [WordTableSentence(sid, forms[rows].tolist(), rows) for sid, rows in sentence_rows(words, source)]


# ----------------------------------------------------------------------------- tokenization
def encode_paper(tokenizer, sentences: Sequence[WordTableSentence]) -> list[Encoded]:
    """Each word tokenized alone, pieces concatenated (no spaces, no BOS)."""
    forms = [form for s in sentences for form in s.forms]
    pieces = tokenizer(forms, add_special_tokens=False)["input_ids"] if forms else []
    encoded, at = [], 0
    for s in sentences:
        words = pieces[at : at + len(s.forms)]
        at += len(s.forms)
        for position, word_pieces in enumerate(words):
            if not word_pieces:
                raise ValueError(f"sentence {s.id}: word {position + 1} '{s.forms[position]}' has no subwords")
        counts = [len(p) for p in words]
        ids = np.fromiter((t for p in words for t in p), dtype=np.int64, count=sum(counts))
        word = np.repeat(np.arange(len(words)), counts)
        encoded.append(Encoded(ids, np.arange(len(ids)), word))
    return encoded


def encode_natural(tokenizer, sentences: Sequence[WordTableSentence]) -> list[Encoded]:
    """The sentence with single spaces between words; subwords go to the words their offsets overlap."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("natural pooling needs a fast tokenizer (character offsets)")
    texts = [" ".join(s.forms) for s in sentences]
    batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True) if texts else {
        "input_ids": [], "offset_mapping": []}
    encoded = []
    for s, ids, offsets in zip(sentences, batch["input_ids"], batch["offset_mapping"]):
        lengths = np.array([len(f) for f in s.forms])
        starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        ends = starts + lengths
        spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        t_start, t_end = spans[:, :1], spans[:, 1:]
        # Subwords overlapping a word's characters; one that spells only a space (BPE may split
        # "Ġ" off a word; its offsets are then empty or cover the space) belongs to no word.
        overlap = (t_start < ends) & (t_end > starts)
        token, word = np.nonzero(overlap)
        covered = np.bincount(word, minlength=len(s.forms))
        if (covered == 0).any():
            position = int(np.flatnonzero(covered == 0)[0])
            raise ValueError(f"sentence {s.id}: word {position + 1} '{s.forms[position]}' has no subwords")
        encoded.append(Encoded(np.asarray(ids, dtype=np.int64), token, word))
    return encoded


def encode(tokenizer, sentences: Sequence[WordTableSentence], pooling: str) -> list[Encoded]:
    if pooling == "paper":
        return encode_paper(tokenizer, sentences)
    if pooling == "natural":
        return encode_natural(tokenizer, sentences)
    raise ValueError(f"activations.pooling: '{pooling}' is not one of {', '.join(WORD_POOLINGS)}")


# ----------------------------------------------------------------------------- forward passes
def check_site(site: str) -> str:
    if site not in SITES:
        raise ValueError(f"activations.site: '{site}' is not one of {', '.join(SITES)}")
    return site


def check_layers(model, layers: Sequence[int], key: str = "activations.layers", site: str = "residual") -> list[int]:
    """Layers as ints within the site's range (residual 1..n_layers+1, mlp 1..n_layers); `key` names the setting."""
    if check_site(site) == "mlp":
        n, meaning = model.config.num_hidden_layers, "layer L = the MLP neurons of block L"
    else:
        n, meaning = model.config.num_hidden_layers + 1, "layer L = hidden_states[L-1], layer 1 = embedding output"
    bad = [layer for layer in layers if not 1 <= int(layer) <= n]
    if bad:
        raise ValueError(f"{key}: {bad} out of range; this model has layers 1..{n} "
                         f"(activations.site {site}: {meaning})")
    return [int(layer) for layer in layers]


def decoder_blocks(body) -> tuple[str, torch.nn.ModuleList] | None:
    """The attribute of a base model holding its transformer blocks (BLOOM `h`, GPT-NeoX and Llama
    `layers`); None for an architecture that keeps them elsewhere (it then runs every block)."""
    for name in ("h", "layers", "blocks"):
        child = getattr(body, name, None)
        if isinstance(child, torch.nn.ModuleList) and len(child) == body.config.num_hidden_layers:
            return name, child
    return None


@contextlib.contextmanager
def stopping_after(body, highest_layer: int) -> Iterator[None]:
    """Run only the blocks that layers up to `highest_layer` need (the paper's layer 17 of 24: 30% less).

    Layer L is hidden_states[L-1], the input of block L-1. The last block kept is block L-1 itself,
    because a model's last hidden state has the final layer norm applied and the others do not.
    """
    found = decoder_blocks(body)
    if found is None or highest_layer >= body.config.num_hidden_layers:
        yield
        return
    name, blocks = found
    setattr(body, name, torch.nn.ModuleList(blocks[:highest_layer]))
    try:
        yield
    finally:
        setattr(body, name, blocks)


def hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int]):
    """The hidden states up to the highest of `layers` (layer L = hidden_states[L-1]), from the base
    model only: the LM head's logits (batch x length x vocabulary) are never needed, nor later blocks."""
    body = model.base_model
    with stopping_after(body, max(layers)):
        return body(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                    use_cache=False).hidden_states


def mlp_site_modules(model_type: str) -> tuple[str, str]:
    """(MLP module, down projection) names of an architecture; an error names the supported ones."""
    if model_type not in MLP_DOWN_PROJECTIONS:
        raise ValueError(f"activations.site mlp: architecture '{model_type}' is not supported (supported: "
                         f"{', '.join(sorted(MLP_DOWN_PROJECTIONS))}); activations.site residual works for any")
    return MLP_DOWN_PROJECTIONS[model_type]


def down_projection(block, model_type: str) -> torch.nn.Module:
    """The linear layer of a decoder block's MLP whose input is the MLP's neurons."""
    mlp_name, projection_name = mlp_site_modules(model_type)
    module = getattr(getattr(block, mlp_name, None), projection_name, None)
    if module is None:
        raise ValueError(f"activations.site mlp: block {type(block).__name__} of a '{model_type}' model has no "
                         f"{mlp_name}.{projection_name}")
    return module


def mlp_width(model) -> int:
    """D of the mlp site: the down projection's input features (BLOOM: 4 x hidden_size)."""
    mlp_site_modules(model.config.model_type)
    found = decoder_blocks(model.base_model)
    if found is None:
        raise ValueError(f"activations.site mlp: {type(model.base_model).__name__} keeps its blocks where this "
                         "code cannot find them")
    projection = down_projection(found[1][0], model.config.model_type)
    return int(getattr(projection, "in_features", None) or projection.weight.shape[0])  # GPT-2's Conv1D is [in, out]


def mlp_neurons(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int]):
    """{layer: [batch, length, D]} the MLP neurons of blocks `layers` (1-based), captured on their way
    into the down projection; the blocks after the highest are not run."""
    body = model.base_model
    found = decoder_blocks(body)
    if found is None:
        raise ValueError(f"activations.site mlp: {type(body).__name__} keeps its blocks where this code cannot find them")
    captured, handles = {}, []
    for layer in layers:
        def keep(module, args, layer=layer):
            captured[layer] = args[0]
        handles.append(down_projection(found[1][layer - 1], model.config.model_type).register_forward_pre_hook(keep))
    try:
        with stopping_after(body, max(layers)):
            body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    missing = sorted(set(layers) - set(captured))
    if missing:
        # e.g. BLOOM with pretraining_tp > 1 and slow_but_exact slices the weight instead of calling the layer
        raise RuntimeError(f"activations.site mlp: the down projection of block(s) {missing} was never called")
    return captured


def load_base_model(model: Mapping[str, Any], step: int | str, **kwargs: Any):
    """(base model, tokenizer, checkpoint record) of a config model at a step, as the dumps and the
    similarity stage load it: without the LM head, whose weights nothing here uses."""
    from transformers import AutoModel

    from xlprobe.checkpoints import load_checkpoint

    return load_checkpoint(dict(model), step, auto_class=AutoModel, **kwargs)


@torch.inference_mode()
def word_vectors(
    model,
    encoded: Sequence[Encoded],
    layers: Sequence[int],
    batch_size: int,
    *,
    pad_id: int = 0,
    progress: bool = True,
    site: str = "residual",
) -> Iterator[tuple[list[int], dict[int, np.ndarray]]]:
    """Yield (sentence indices, {layer: float32 [their words, D]}) batch by batch, longest sentences first.

    Word rows come in the order of the yielded sentences, each sentence's words in order.
    """
    layers = check_layers(model, layers, site=site)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].ids))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    bar = tqdm(total=sum(len(encoded[i].word) for i in order), desc="subword pairs", unit="pair",
               disable=not progress, mininterval=5)
    for batch in batches:
        width = max(len(encoded[i].ids) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        flat_tokens, flat_words, n_words = [], [], 0
        for b, i in enumerate(batch):
            e = encoded[i]
            ids[b, : len(e.ids)] = torch.from_numpy(e.ids)
            mask[b, : len(e.ids)] = 1
            flat_tokens.append(b * width + e.token)
            flat_words.append(n_words + e.word)
            n_words += int(e.word.max()) + 1
        tokens = torch.from_numpy(np.concatenate(flat_tokens)).to(device)
        words = torch.from_numpy(np.concatenate(flat_words)).to(device)
        counts = torch.bincount(words, minlength=n_words).clamp(min=1).unsqueeze(1).float()
        if site == "mlp":
            states = mlp_neurons(model, ids.to(device), mask.to(device), layers)
        else:
            hidden = hidden_states(model, ids.to(device), mask.to(device), layers)
            states = {layer: hidden[layer - 1] for layer in layers}
        pooled = {}
        for layer in layers:
            hidden = states[layer].reshape(len(batch) * width, -1)
            sums = torch.zeros((n_words, hidden.shape[1]), dtype=torch.float32, device=device)
            sums.index_add_(0, words, hidden.index_select(0, tokens).float())
            pooled[layer] = (sums / counts).cpu().numpy()
        del states
        bar.update(len(tokens))
        yield batch, pooled
    bar.close()


# ----------------------------------------------------------------------------- storage
class RowWriter:
    """Rows of a float16 [rows, width] .npy written in place: header by open_memmap, rows by pwrite.

    Writing through a memory map would keep every touched page resident (peak memory growing with
    the treebank); positioned writes keep only the current batch in memory.
    """

    def __init__(self, path: Path, rows: int, width: int):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, width))
        self.offset, self.width = array.offset, width
        del array
        self.fd = os.open(path, os.O_WRONLY)

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], np.ascontiguousarray(values[order], dtype=np.float16)
        # One write per run of consecutive rows (a sentence's words usually are one run).
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])):
            data = values[start:stop].tobytes()
            os.pwrite(self.fd, data, self.offset + int(rows[start]) * self.width * 2)

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def dump_word_activations(
    model,
    tokenizer,
    words: pd.DataFrame,
    layer_paths: Mapping[int, str | os.PathLike],
    *,
    pooling: str = "paper",
    batch_size: int = 16,
    max_subwords: int = 2048,
    source: str = "word table",
    progress: bool = True,
    site: str = "residual",
) -> dict[str, Any]:
    """Write one float16 .npy per layer, row-aligned with `words`; return the facts for meta.json."""
    layers = check_layers(model, list(layer_paths), site=site)
    sentences = sentences_from_table(words, source)
    encoded = encode(tokenizer, sentences, pooling)
    keep = [i for i, e in enumerate(encoded) if len(e.ids) < max_subwords]
    skipped = [sentences[i].id for i, e in enumerate(encoded) if len(e.ids) >= max_subwords]
    if skipped:
        log.warning("%d sentences with >= %d subwords skipped (rows left zero)", len(skipped), max_subwords)
    width = mlp_width(model) if site == "mlp" else model.config.hidden_size
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    with contextlib.ExitStack() as stack:
        temps = {layer: stack.enter_context(atomic_path(layer_paths[layer], suffix=".npy")) for layer in layers}
        writers = {layer: RowWriter(temps[layer], len(words), width) for layer in layers}
        try:
            kept = [encoded[i] for i in keep]
            for batch, pooled in word_vectors(model, kept, layers, batch_size, pad_id=pad_id, progress=progress,
                                              site=site):
                rows = np.concatenate([sentences[keep[i]].rows for i in batch])
                for layer, vectors in pooled.items():
                    half = vectors.astype(np.float16)
                    if not np.isfinite(half).all():
                        bad = [sentences[keep[i]].id for i in batch]
                        raise FloatingPointError(
                            f"layer {layer}: NaN or inf (or beyond float16 range) in the batch of sentences {bad}")
                    writers[layer].write(rows, half)
        finally:
            for writer in writers.values():
                writer.close()
    return {
        "rows": len(words),
        "width": width,
        "layers": layers,
        "site": site,
        "pooling": pooling,
        "dtype": "float16",
        "compute_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "sentences": len(sentences),
        "subwords": int(sum(len(encoded[i].ids) for i in keep)),
        "max_subwords": max_subwords,
        "skipped_sentences": skipped,
    }


def dump_activations(
    words_path: str | os.PathLike,
    layer_paths: Mapping[int, str | os.PathLike],
    meta_path: str | os.PathLike,
    *,
    model: Mapping[str, Any],
    activations: Mapping[str, Any],
    max_subwords: int,
    cache_dir: str | os.PathLike | None = None,
    demo_dir: str | os.PathLike | None = None,
    checkpoint_input: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The rule dump_activations: load the (model, step) checkpoint, dump every layer, write meta.json.

    `checkpoint_input`: the demo model folder or checkpoint marker the job was given; its recorded
    files are checked before the weights are loaded. meta.json records each layer file's size and
    checksum (`files`), for the probes and `xlprobe verify`.
    """
    from xlprobe.devices import select_device

    if checkpoint_input is not None:
        check_checkpoint(checkpoint_input)
    site = check_site(activations["site"])
    device = select_device(activations["device"])
    net, tokenizer, checkpoint = load_base_model(model, model["step"], demo_dir=demo_dir, cache_dir=cache_dir,
                                                 device=device, dtype=activations["dtype"])
    words = read_word_table(words_path)
    meta = dump_word_activations(
        net, tokenizer, words, {int(k): v for k, v in layer_paths.items()},
        pooling=activations["pooling"],
        batch_size=int(activations["batch_size"]),
        max_subwords=max_subwords,
        source=str(words_path),
        site=site,
    )
    meta.update(model=model["name"], step=str(model["step"]), device=str(device))
    meta["files"] = {Path(path).name: file_record(path) for path in layer_paths.values()}
    meta["provenance"] = provenance(
        {"model": {k: v for k, v in model.items() if k != "pretrain"}, "activations": dict(activations),
         "max_subwords": max_subwords},
        checkpoint=checkpoint, words=str(words_path), outputs={str(k): str(v) for k, v in layer_paths.items()},
        checkpoint_input=None if checkpoint_input is None else str(checkpoint_input),
    )
    write_json(meta_path, meta)
    return meta
