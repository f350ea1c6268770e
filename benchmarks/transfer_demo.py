"""Time one demo-sized transfer job on CPU (goal: well under a minute; the demo runs 8 of them).

Same shapes as config/demo.yaml: a BLOOM of hidden 128 and 4 layers with a 1000-token BPE, word
tables of 1500 sentences for a source and three targets, LoRA, 600 training sentences, 2 epochs,
batch 16, max length 64, at most 500 scored sentences per dev/target set. Real English UD-POS
sentences of at most 20 words (mean about 10, like the demo's) stand in for the synthetic languages.

    python benchmarks/transfer_demo.py [--shared-data ../shared/data] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import BloomConfig, BloomForCausalLM

from xlprobe.demo.pretrain import train_tokenizer
from xlprobe.transfer import run_transfer
from xlprobe.transfer.data import read_xtreme_pos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    sentences = [s for s in read_xtreme_pos(Path(args.shared_data, "udpos", "train-en.tsv")) if len(s[0]) <= 20]
    sentences = sentences[: 4 * 1500]
    print(f"mean sentence length {sum(len(w) for w, _ in sentences) / len(sentences):.1f} words")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = tmp / "text.txt"
        text.write_text("\n".join(" ".join(w) for w, _ in sentences[:3000]) + "\n", encoding="utf-8")
        tokenizer = train_tokenizer([text], tmp / "model", vocab_size=1000)
        config = BloomConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, n_layer=4, n_head=4,
                             pad_token_id=tokenizer.pad_token_id)
        BloomForCausalLM(config).save_pretrained(tmp / "model")
        tables = []
        for i, tb in enumerate(["xa", "xb", "xc", "xd"]):
            rows = [{"sentence_id": f"{tb}-{s}", "word_id": w + 1, "form": form, "upos": tag, "split": "train"}
                    for s, (words, tags) in enumerate(sentences[i * 1500 : (i + 1) * 1500])
                    for w, (form, tag) in enumerate(zip(words, tags))]
            pd.DataFrame(rows).to_csv(tmp / f"{tb}.tsv", sep="\t", index=False)
            tables.append(tmp / f"{tb}.tsv")
        task = {"name": "pos", "type": "udpos", "format": "conllu", "source": "xa", "targets": ["xb", "xc", "xd"]}
        settings = {"method": "lora", "epochs": 2, "max_train_examples": 600, "batch_size": 16,
                    "lr": 2.0e-3, "max_length": 64, "max_eval_examples": 500, "device": "cpu"}
        started = time.perf_counter()
        table = run_transfer(tmp / "model", task, settings, tmp / "out.tsv", data_files=tables, seed=0)
        elapsed = time.perf_counter() - started
    print(table.to_string(index=False))
    print(f"demo transfer job (hidden {args.hidden}, {args.threads} thread(s)): {elapsed:.1f} s")


if __name__ == "__main__":
    main()
