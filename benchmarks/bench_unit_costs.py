"""Measure the unit costs that `xlprobe plan` and the rules' resource requests read; write them as a TSV.

    python benchmarks/bench_unit_costs.py                          # prints the table
    python benchmarks/bench_unit_costs.py --write src/xlprobe/data/unit_costs.tsv
    python benchmarks/bench_unit_costs.py --parts probe --write src/xlprobe/data/unit_costs.tsv
        # re-measures only the probe epoch rows; the table's other rows are kept as they are

Measured here, on this CPU with `--threads` torch threads (each run short; the machine may be shared,
so the load average is recorded with the table):
- probe epoch time over a grid of rows x D x classes, fitted as rows * D * (a + b * classes);
- greedy selection time, fitted as dev rows * D * classes * k * g;
- epochs to early stopping with the protocol's settings on real-ish activations: a random-weight
  BLOOM-architecture model on real UD English sentences (UPOS as the attribute);
- activation-dump throughput (GFLOP/s of the blocks' matrix products and words/s) with that model;
- transfer training throughput (examples/s, GFLOP/s) of LoRA steps on a model of the same shape.
Rows marked `assumed` in the table (GPU throughputs, subwords per word, tokens per transfer example)
are not measured here: there is no GPU on this machine. Edit them for your hardware.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_activations import UD_ENGLISH, english_words, make_model

from xlprobe.activations import dump_word_activations, encode, sentences_from_table
from xlprobe.greedy import greedy_select
from xlprobe.probe import LatentSubsetProbe

# Not measurable here (no GPU), stated so that every number the plan uses sits in one table.
ASSUMED = [
    (
        "dump_gpu_gflops",
        1000.0,
        "GFLOP/s",
        (
            "effective bf16 rate of a dump on one data-centre GPU: batches of single words (paper pooling) "
            "are a few hundred tokens"
        ),
    ),
    ("transfer_gpu_gflops", 10000.0, "GFLOP/s", "effective rate of (Q)LoRA fine-tuning on one GPU"),
    (
        "similarity_gpu_gflops",
        10000.0,
        "GFLOP/s",
        "effective rate of the similarity forward passes on one GPU",
    ),
    (
        "subwords_per_word",
        2.0,
        "subwords",
        "BLOOM pieces per word, each word tokenized alone (paper pooling)",
    ),
    ("xnli_tokens_per_example", 80.0, "tokens", "premise + hypothesis, capped by transfer.max_length"),
    ("udpos_tokens_per_example", 40.0, "tokens", "one sentence"),
    ("similarity_tokens_per_sentence", 40.0, "tokens", "one side of a parallel pair"),
]


def timed(func):
    start = time.process_time()
    func()
    return time.process_time() - start


def probe_epochs(threads_note: str) -> list[tuple]:
    """Per-epoch probe time on Gaussian data over a small grid; least squares for a and b."""
    grid = [(3000, 512, 2), (3000, 1024, 17), (6000, 1024, 2), (3000, 2048, 8), (6000, 2048, 17)]
    epochs, features, seconds = 2, [], []
    for rows, dim, classes in grid:
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(rows, dim)).astype(np.float32), rng.integers(0, classes, rows)
        probe = LatentSubsetProbe(max_epochs=epochs, patience=epochs + 1, progress=False)
        per_epoch = timed(functools.partial(probe.fit, X, y, n_classes=classes)) / epochs
        print(f"probe epoch rows={rows} D={dim} C={classes}: {per_epoch:.3f} s CPU", flush=True)
        features.append([rows * dim, rows * dim * classes])
        seconds.append(per_epoch)
    (a, b), *_ = np.linalg.lstsq(np.array(features, float), np.array(seconds), rcond=None)
    fitted = np.array(features) @ [a, b]
    worst = float(np.max(np.abs(fitted - seconds) / seconds))
    note = f"epoch = rows * D * (a + b * classes); grid {grid}; worst fit error {worst:.0%}; {threads_note}"
    return [
        ("probe_epoch_ns_per_row_dim", max(a, 0.0) * 1e9, "ns", "measured", note),
        ("probe_epoch_ns_per_row_dim_class", max(b, 0.0) * 1e9, "ns", "measured", note),
    ]


def greedy_cost(threads_note: str) -> list[tuple]:
    rng = np.random.default_rng(1)
    n, dim, classes, k = 3000, 1024, 8, 20
    X, y = rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, classes, n)
    weight, bias = rng.normal(size=(classes, dim)) * 0.05, np.zeros(classes)
    seconds = timed(lambda: greedy_select(weight, bias, X, y, k, progress=False))
    print(f"greedy n_dev={n} D={dim} C={classes} k={k}: {seconds:.2f} s CPU", flush=True)
    note = (
        f"greedy = dev rows * D * classes * k * g; measured at {n} x {dim} x {classes} x {k}; {threads_note}"
    )
    return [
        ("greedy_ns_per_row_dim_class_pick", seconds / (n * dim * classes * k) * 1e9, "ns", "measured", note)
    ]


def real_ish(args, threads_note: str) -> list[tuple]:
    """A random-weight model's activations of real UD English words; UPOS probed to early stopping."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_args = argparse.Namespace(
        vocab=4000, hidden=args.hidden, layers=args.layers, heads=4, device="cpu", dtype="float32"
    )
    model, tokenizer = make_model(model_args, workdir)
    words = english_words("dev").iloc[: args.words].reset_index(drop=True)
    words = words[words["sentence_id"].isin(words["sentence_id"].iloc[:-1])]  # whole sentences only
    sentences = sentences_from_table(words)
    n_subwords = sum(len(e.ids) for e in encode(tokenizer, sentences, "paper"))
    layer = args.layers
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp, "layer.npy")
        start = time.perf_counter()
        dump_word_activations(
            model, tokenizer, words, {layer: out}, pooling="paper", batch_size=64, progress=False
        )
        dump_seconds = time.perf_counter() - start
        X = np.load(out).astype(np.float32)
    gflops = n_subwords * layer * 24 * args.hidden**2 / dump_seconds / 1e9
    print(
        f"dump: {len(words)} words, {n_subwords} subwords, {dump_seconds:.1f} s wall, {gflops:.2f} GFLOP/s",
        flush=True,
    )
    upos = pd.Series(conllu_upos(len(words)))
    keep = upos.map(upos.value_counts()) >= 20
    X, labels = X[keep.to_numpy()], pd.Categorical(upos[keep]).codes.astype(np.int64)
    best, total = [], []
    for seed in range(args.seeds):
        probe = LatentSubsetProbe(seed=seed, progress=False).fit(X, labels)  # protocol settings
        best.append(probe.best_epoch_)
        total.append(probe.epochs_)
        print(
            f"early stopping seed {seed}: best epoch {probe.best_epoch_}, {probe.epochs_} epochs", flush=True
        )
    note = (
        f"random-weight BLOOM shape (hidden {args.hidden}, {args.layers} layers) on {len(X)} UD English dev "
        f"words, UPOS ({labels.max() + 1} classes), patience 50; best epochs {best}, epochs run {total}"
    )
    dump_note = (
        f"hidden {args.hidden}, {layer} blocks, {n_subwords / len(words):.2f} subwords/word; {threads_note}"
    )
    return [
        # the latest best epoch over the seeds: requests must cover a slow run, not the average one
        ("probe_best_epoch", float(max(best)), "epochs", "measured", note),
        ("dump_cpu_gflops", gflops, "GFLOP/s", "measured", dump_note),
        ("dump_cpu_words_per_second", len(words) / dump_seconds, "words/s", "measured", dump_note),
    ]


def transfer_cost(args, threads_note: str) -> list[tuple]:
    """LoRA training steps of a small BLOOM-architecture token classifier (the transfer rule's model
    class): examples/s and the rate in GFLOP/s, counted as 6 FLOP per block parameter and token."""
    from transformers import BloomConfig, BloomForCausalLM

    from xlprobe.transfer.data import UPOS
    from xlprobe.transfer.methods import load_classifier

    batch, length, hidden, layers = 8, 64, args.hidden, args.layers
    config = BloomConfig(vocab_size=4000, hidden_size=hidden, n_layer=layers, n_head=4, pad_token_id=3)
    with tempfile.TemporaryDirectory() as tmp:
        BloomForCausalLM(config).save_pretrained(tmp)
        model = load_classifier(tmp, "udpos", UPOS, "lora", 3, torch.device("cpu"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 4000, (batch, length), generator=generator)
    labels = torch.randint(0, len(UPOS), (batch, length), generator=generator)
    model.train()

    def step():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    steps = 5
    seconds = timed(lambda: [step() for _ in range(steps)])
    examples = steps * batch / seconds
    gflops = examples * length * 6 * 12 * layers * hidden**2 / 1e9
    print(
        f"transfer (LoRA, hidden {hidden}, {layers} blocks): {examples:.1f} examples/s, {gflops:.2f} GFLOP/s",
        flush=True,
    )
    note = f"LoRA token classifier, hidden {hidden}, {layers} blocks, batch {batch} x {length} tokens; {threads_note}"
    return [
        ("transfer_cpu_examples_per_second", examples, "examples/s", "measured", note),
        ("transfer_cpu_gflops", gflops, "GFLOP/s", "measured", note),
    ]


def conllu_upos(limit: int) -> list[str]:
    """UPOS of the first `limit` words of UD English dev, in english_words' order."""
    import conllu

    with open(UD_ENGLISH / "en-ud-dev.conllu", encoding="utf-8") as handle:
        tags = [t["upos"] for s in conllu.parse(handle.read()) for t in s if isinstance(t["id"], int)]
    return tags[:limit]


PARTS = {
    "probe": lambda args, note: probe_epochs(note),
    "greedy": lambda args, note: greedy_cost(note),
    "realish": real_ish,
    "transfer": transfer_cost,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--words", type=int, default=6000, help="UD English dev words for the real-ish part")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "xlprobe-bench"))
    parser.add_argument("--write", help="TSV to write (name, value, unit, source, note)")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=list(PARTS),
        default=list(PARTS),
        help="measure only these; with --write, the existing table's rows of the other parts are kept",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    threads_note = (
        f"{args.threads} torch thread(s), {os.cpu_count()} CPUs, load average {load[0]:.1f} at start"
    )
    print(threads_note, flush=True)
    rows = [row for part in args.parts for row in PARTS[part](args, threads_note)]
    rows += [(name, value, unit, "assumed", note) for name, value, unit, note in ASSUMED]
    stamp = datetime.date.today().isoformat()
    table = pd.DataFrame(rows, columns=["name", "value", "unit", "source", "note"])
    table["source"] = [f"{s} {stamp}" if s == "measured" else s for s in table["source"]]
    if args.write and set(args.parts) != set(PARTS):  # the other parts' rows as they were, in place
        existing = pd.read_csv(args.write, sep="\t", keep_default_na=False)
        order = [*existing["name"], *(n for n in table["name"] if n not in set(existing["name"]))]
        rest = existing[~existing["name"].isin(table["name"])]
        table = pd.concat([rest, table]).set_index("name").loc[order].reset_index()
    print(table[["name", "value", "unit", "source"]].to_string(index=False))
    if args.write:
        table.to_csv(args.write, sep="\t", index=False, float_format="%.6g", quoting=csv.QUOTE_MINIMAL)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
