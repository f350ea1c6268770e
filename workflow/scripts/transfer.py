"""Rule transfer: fine-tune one checkpoint on the source language, score the targets."""

import torch

from xlprobe.integrity import check_checkpoint
from xlprobe.logs import log_to
from xlprobe.transfer import transfer_checkpoint

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    check_checkpoint(snakemake.input.checkpoint)  # its recorded files, before loading it
    transfer_checkpoint(
        snakemake.params.model,
        snakemake.wildcards.step,
        snakemake.params.task,
        snakemake.params.transfer,
        snakemake.output.metrics,
        details_output=snakemake.output.details,
        data_files=list(snakemake.input.data),
        seed=snakemake.params.seed,
        demo_dir=snakemake.params.demo_dir,
        cache_dir=snakemake.params.cache_dir,
    )
