"""The demo's tiny models: a byte-level BPE tokenizer and a BLOOM-architecture LM trained from scratch.

Read top to bottom like nanoGPT: load text, tokenize it into one stream, sample random windows,
AdamW with warm-up and a cosine schedule, save a Hugging Face checkpoint (model + tokenizer) at
every configured step, step 0 (the random initialisation) included.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm import tqdm
from transformers import (
    AutoTokenizer,
    BloomConfig,
    BloomForCausalLM,
    PreTrainedTokenizerFast,
    get_cosine_schedule_with_warmup,
)

from xlprobe.integrity import write_folder_checksums
from xlprobe.io import current_umask, write_tsv

log = logging.getLogger(__name__)

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def read_lines(text_files: Sequence[str | os.PathLike]) -> list[str]:
    """Non-empty lines of every file, in file order."""
    lines = []
    for path in text_files:
        with open(path, encoding="utf-8") as handle:
            lines.extend(line.strip() for line in handle if line.strip())
    if not lines:
        raise ValueError(f"no text in {', '.join(map(str, text_files))}")
    return lines


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(
    text_files: Sequence[str | os.PathLike], out_dir: str | os.PathLike, vocab_size: int
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (like BLOOM's) and save it as Hugging Face tokenizer files.

    No prefix space is added, as in BLOOM: a word tokenized alone differs from the same word inside
    a sentence, which is what separates the `paper` and `natural` pooling modes.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets: a word's offsets exclude the space glued to its first piece.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(p) for p in text_files], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    # BLOOM pads on the left; our extraction builds its own batches, so this only matters to others.
    fast.padding_side = "left"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    log.info("tokenizer: %d tokens -> %s", len(fast), out_dir)
    return fast


# ----------------------------------------------------------------------------- data
def token_stream(tokenizer, lines: list[str], seed: int) -> torch.Tensor:
    """The lines shuffled (languages mixed), tokenized, each closed by EOS, as one long 1-D tensor."""
    lines = list(lines)
    random.Random(seed).shuffle(lines)
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return torch.tensor([t for sentence in ids for t in (*sentence, eos)], dtype=torch.long)


def get_batch(stream: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """Random windows of the stream, [batch_size, seq_len].

    One label convention only: the window is both the input and the `labels`, and transformers'
    causal-LM loss shifts the labels itself (pre-shifted targets would teach the token after next).
    """
    starts = torch.randint(len(stream) - seq_len, (batch_size,), generator=generator)
    return torch.stack([stream[s : s + seq_len] for s in starts])


@torch.no_grad()
def evaluate(model, stream: torch.Tensor, batch_size: int, seq_len: int, batches: int = 4) -> float:
    """Mean loss on fixed windows of held-out text (the same windows at every step)."""
    generator = torch.Generator().manual_seed(0)
    model.eval()
    losses = []
    for _ in range(batches):
        x = get_batch(stream, batch_size, seq_len, generator)
        losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


# ----------------------------------------------------------------------------- training
def init_model(tokenizer, *, hidden_size: int, n_layer: int, n_head: int, seed: int) -> BloomForCausalLM:
    """A randomly initialised BLOOM-architecture LM sized for `tokenizer` (same seed, same weights)."""
    if hidden_size % n_head:
        raise ValueError(f"pretrain.hidden_size {hidden_size} is not divisible by pretrain.n_head {n_head}")
    config = BloomConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    return BloomForCausalLM(config)


def pretrain(
    tokenizer_dir: str | os.PathLike,
    text_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    hidden_size: int,
    n_layer: int,
    n_head: int,
    train_steps: int,
    save_steps: Sequence[int],
    batch_size: int = 32,
    seq_len: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    warmup_fraction: float = 0.05,
    weight_decay: float = 0.1,
    held_out_fraction: float = 0.05,
) -> pd.DataFrame:
    """Pre-train a BloomForCausalLM from scratch; write `out_dir/<step>/` checkpoints and the log.

    The whole directory is built under a temporary name and renamed at the end, so a killed run
    leaves nothing that looks finished. Returns the training log (also `out_dir/training_log.tsv`).
    """
    save_steps = sorted({int(s) for s in save_steps})
    if save_steps[-1] > train_steps:
        raise ValueError(f"pretrain.save_steps {save_steps} go beyond pretrain.train_steps {train_steps}")

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    lines = read_lines(text_files)
    random.Random(seed).shuffle(lines)
    n_held_out = max(1, int(len(lines) * held_out_fraction))
    train = token_stream(tokenizer, lines[n_held_out:], seed)
    held_out = token_stream(tokenizer, lines[:n_held_out], seed)
    for name, stream in (("training", train), ("held-out", held_out)):
        if len(stream) <= seq_len:
            raise ValueError(f"{name} text has {len(stream)} tokens, fewer than seq_len + 1 = {seq_len + 1}")
    log.info("%d training tokens, %d held-out tokens", len(train), len(held_out))

    model = init_model(tokenizer, hidden_size=hidden_size, n_layer=n_layer, n_head=n_head, seed=seed)
    model.train()
    log.info("model: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)

    # No weight decay on biases and LayerNorm weights (the usual GPT recipe).
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, max(1, math.ceil(warmup_fraction * train_steps)), train_steps
    )
    generator = torch.Generator().manual_seed(seed)

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A killed earlier attempt left its hidden folder: this job is its only writer, so it goes.
    prefix = f".{out_dir.name}.building-"
    for leftover in out_dir.parent.glob(f"{glob.escape(prefix)}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    building = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
    # mkdtemp makes the folder 0700; the finished model gets the mode an ordinary mkdir would.
    os.chmod(building, 0o777 & ~current_umask())
    rows = []
    try:

        def save(step: int, train_loss: float) -> None:
            held_out_loss = evaluate(model, held_out, batch_size, seq_len)
            rows.append({"step": step, "train_loss": train_loss, "held_out_loss": held_out_loss,
                         "lr": scheduler.get_last_lr()[0]})
            model.save_pretrained(building / str(step))
            tokenizer.save_pretrained(building / str(step))
            log.info("step %d: held-out loss %.4f, saved", step, held_out_loss)

        if save_steps[0] == 0:
            save(0, float("nan"))
        progress = tqdm(range(1, train_steps + 1), desc="pretrain", mininterval=2)
        for step in progress:
            x = get_batch(train, batch_size, seq_len, generator)
            loss = model(input_ids=x, labels=x).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step in save_steps:
                save(step, loss.item())
            elif step % 50 == 0:
                rows.append({"step": step, "train_loss": loss.item(), "held_out_loss": float("nan"),
                             "lr": scheduler.get_last_lr()[0]})
        training_log = pd.DataFrame(rows)
        write_tsv(building / "training_log.tsv", training_log)
        write_folder_checksums(building)  # what every file should be, for the dumps and xlprobe verify
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return training_log
