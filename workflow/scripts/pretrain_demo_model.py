from pathlib import Path

import torch

from xlprobe.demo.pretrain import pretrain
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    pretrain(
        Path(snakemake.input.tokenizer).parent,
        snakemake.input.text,
        snakemake.output[0],
        seed=snakemake.params.seed,
        **snakemake.params.pretrain,
    )
