"""Activation dumps: one sentence at a time vs batched, and peak memory when the treebank doubles.

Real English UD sentences, a BLOOM-architecture model of chosen shape with random weights, and a
byte-level BPE tokenizer trained on the UD text itself (no downloads).

    python benchmarks/bench_activations.py speed --hidden 512 --layers 8 --heads 8 --sentences 200
    python benchmarks/bench_activations.py memory --hidden 256 --layers 4 --heads 4

`speed` times the same sentences with batch size 1 (one forward pass per sentence), with batching,
and the released code's way (one sentence at a time through every block), checks that all give the
same vectors, and prints words/s, GFLOP/s and the ratios. On a GPU machine:

    python benchmarks/bench_activations.py speed --hidden 1024 --layers 24 --heads 16 --layer 17 \
        --device cuda --batch-size 64 --sentences 1000      # bloom-560m shape, bfloat16

`memory` dumps the treebank and the treebank twice over in fresh subprocesses and
prints each one's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conllu
import numpy as np
import pandas as pd
import torch

from xlprobe.activations import dump_word_activations, encode, sentences_from_table, word_vectors
from xlprobe.demo.pretrain import init_model, train_tokenizer
from xlprobe.devices import select_device, select_dtype

SHARED = Path(os.environ.get("XLPROBE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
UD_ENGLISH = SHARED / "ud-2.1" / "UD_English"


def english_words(split: str = "dev", copies: int = 1) -> pd.DataFrame:
    """The word table columns the dump needs, from UD English (multiword ranges and empty nodes dropped)."""
    rows = []
    with open(UD_ENGLISH / f"en-ud-{split}.conllu", encoding="utf-8") as handle:
        sentences = conllu.parse(handle.read())
    for copy in range(copies):
        for s in sentences:
            sid = f"{copy}:{s.metadata['sent_id']}"
            rows += [(sid, t["id"], t["form"]) for t in s if isinstance(t["id"], int)]
    return pd.DataFrame(rows, columns=["sentence_id", "word_id", "form"])


def make_model(args, workdir: Path):
    tokenizer_dir = workdir / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        text = workdir / "ud_text.txt"
        with open(UD_ENGLISH / "en-ud-train.conllu", encoding="utf-8") as handle:
            text.write_text("\n".join(s.metadata["text"] for s in conllu.parse(handle.read())) + "\n")
        train_tokenizer([text], tokenizer_dir, vocab_size=args.vocab)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = init_model(tokenizer, hidden_size=args.hidden, n_layer=args.layers, n_head=args.heads, seed=0).eval()
    device = select_device(args.device)
    return model.to(device=device, dtype=select_dtype(args.dtype, device)), tokenizer


def synchronize(model) -> None:
    """Wait for queued GPU work, so that the clock measures it."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def released_style(model, encoded, layer: int) -> np.ndarray:
    """The released code's way, written out: each sentence alone through every block of the model."""
    body, rows = model.base_model, []
    device = next(model.parameters()).device
    for e in encoded:
        ids = torch.from_numpy(e.ids)[None].to(device)
        hidden = body(input_ids=ids, output_hidden_states=True).hidden_states[layer - 1][0].float()
        word, n = torch.from_numpy(e.word).to(device), int(e.word.max()) + 1
        sums = torch.zeros(n, hidden.shape[1], device=device)
        sums.index_add_(0, word, hidden[torch.from_numpy(e.token).to(device)])
        rows.append((sums / torch.bincount(word, minlength=n).clamp(min=1)[:, None]).cpu().numpy())
    return np.concatenate(rows)


def speed(args) -> None:
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    model, tokenizer = make_model(args, workdir)
    words = english_words("dev")
    sentences = sentences_from_table(words)[: args.sentences]
    encoded = encode(tokenizer, sentences, args.pooling)
    n_words = sum(len(s.forms) for s in sentences)
    n_subwords = sum(len(e.ids) for e in encoded)
    layer = args.layer or args.layers + 1 - args.layers // 4

    def gflops(seconds: float, blocks: int) -> float:
        """Arithmetic rate of the blocks' matrix products: 24 d^2 FLOP per token and block
        (QKV, output, 4d MLP; attention scores, small for sentences, not counted)."""
        return n_subwords * blocks * 24 * args.hidden**2 / seconds / 1e9

    # the blocks each way runs: up to the probed layer (stopping_after), or all of them
    ours, everything = min(layer, args.layers), args.layers
    layers = [layer]
    print(f"model: BLOOM architecture, hidden {args.hidden}, {args.layers} layers, {args.heads} heads, "
          f"vocabulary {len(tokenizer)}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; "
          f"threads {args.threads}; layer {layers}; {next(model.parameters()).device}, "
          f"{next(model.parameters()).dtype}")
    print(f"data: {len(sentences)} UD English dev sentences, {n_words} words, {n_subwords} subwords, "
          f"pooling {args.pooling}")

    results, outputs = {}, {}
    for name, batch_size in (("one at a time", 1), (f"batched ({args.batch_size})", args.batch_size)):
        vectors = np.zeros((n_words, args.hidden), dtype=np.float32)
        offsets = np.cumsum([0] + [len(s.forms) for s in sentences])
        synchronize(model)
        start = time.perf_counter()
        for batch, pooled in word_vectors(model, encoded, layers, batch_size, progress=False):
            rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in batch])
            vectors[rows] = pooled[layers[0]]
        synchronize(model)
        seconds = time.perf_counter() - start
        results[name], outputs[name] = n_words / seconds, vectors
        print(f"{name:>16}: {seconds:7.2f} s, {n_words / seconds:9.1f} words/s, {gflops(seconds, ours):5.1f} GFLOP/s")
    synchronize(model)
    start = time.perf_counter()
    released = released_style(model, encoded, layers[0])
    synchronize(model)
    seconds = time.perf_counter() - start
    print(f"{'released code':>16}: {seconds:7.2f} s, {n_words / seconds:9.1f} words/s, "
          f"{gflops(seconds, everything):5.1f} GFLOP/s "
          "(one sentence at a time through all blocks)")
    one, many = outputs.values()
    error = max(np.abs(other - one).max() / np.abs(one).max() for other in (many, released))
    rates = list(results.values())
    print(f"ratio batched / one at a time: {rates[1] / rates[0]:.1f}x; batched / released code: "
          f"{rates[1] / (n_words / seconds):.1f}x; max relative difference {error:.2e}")


def memory(args) -> None:
    """Each size in a fresh process, so that ru_maxrss is that dump's own peak."""
    peaks = {}
    for copies in (1, 2):
        out = subprocess.run(
            [sys.executable, __file__, "memory-one", "--copies", str(copies), *args.passthrough],
            check=True, capture_output=True, text=True,
        ).stdout
        peaks[copies] = json.loads(out.strip().splitlines()[-1])
        p = peaks[copies]
        print(f"treebank x{copies}: {p['rows']} words, {p['seconds']:.1f} s, peak RSS {p['peak_mb']:.0f} MB "
              f"(before the dump {p['before_mb']:.0f} MB)")
    growth = peaks[2]["peak_mb"] / peaks[1]["peak_mb"] - 1
    print(f"peak memory growth when the treebank doubles: {100 * growth:.1f}%")


def memory_one(args) -> None:
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    model, tokenizer = make_model(args, workdir)
    words = english_words("dev", copies=args.copies)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        start = time.perf_counter()
        dump_word_activations(model, tokenizer, words, {args.layers: Path(tmp, "layer.npy")},
                              pooling=args.pooling, batch_size=args.batch_size, progress=False)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": len(words), "seconds": seconds, "peak_mb": peak, "before_mb": before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["speed", "memory", "memory-one"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layer", type=int, default=None, help="probed layer (default: about 3/4 deep)")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--sentences", type=int, default=200, help="speed: first N dev sentences")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pooling", default="paper", choices=["paper", "natural"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="speed: auto (a GPU where there is one), cpu, cuda")
    parser.add_argument("--dtype", default="auto", help="speed: auto (float32 on CPU, bfloat16 on GPU), ...")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "xlprobe-bench"))
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if not UD_ENGLISH.is_dir():
        sys.exit(f"UD English not found at {UD_ENGLISH} (set XLPROBE_SHARED_DATA)")
    args.passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                        if k in {"hidden", "layers", "heads", "layer", "vocab", "batch_size", "pooling", "threads", "workdir"}
                        and v is not None]
    {"speed": speed, "memory": memory, "memory-one": memory_one}[args.mode](args)


if __name__ == "__main__":
    main()
