from pathlib import Path

from xlprobe.demo.pretrain import train_tokenizer
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    train_tokenizer(snakemake.input.text, Path(snakemake.output[0]).parent, snakemake.params.vocab_size)
