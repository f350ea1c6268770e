"""Examples per second of LoRA (or QLoRA) training steps on a bloom-560m-shaped token classifier.

Random weights of BLOOM-560m's shape (24 layers, width 1024, 16 heads, vocab 250,880): no download.
Batch 32 x 128 tokens, the paper's effective batch and max length. Meant for a GPU; `--layers 2`
makes a quick CPU smoke run.

    python benchmarks/transfer_lora_step.py [--method lora|qlora|full] [--steps 5] [--layers 24]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import BloomConfig, BloomForCausalLM

from xlprobe.devices import select_device
from xlprobe.transfer.data import UPOS
from xlprobe.transfer.methods import load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="lora", choices=["lora", "qlora", "full"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = select_device(args.device)
    config = BloomConfig(vocab_size=250_880, hidden_size=1024, n_layer=args.layers, n_head=16, pad_token_id=3)
    with tempfile.TemporaryDirectory() as tmp:
        BloomForCausalLM(config).save_pretrained(tmp)
        model = load_classifier(tmp, "udpos", UPOS, args.method, 3, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 250_880, (args.batch_size, args.length), generator=generator).to(device)
    labels = torch.randint(0, len(UPOS), (args.batch_size, args.length), generator=generator).to(device)
    mask = torch.ones_like(ids)
    model.train()

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up: allocations, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    rate = args.steps * args.batch_size / elapsed
    print(f"{args.method} on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"{args.layers} layers, batch {args.batch_size} x {args.length}: {rate:.1f} examples/s, "
          f"{elapsed / args.steps:.3f} s/step, loss {loss:.3f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
