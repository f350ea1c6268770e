"""Rule similarity: mean cosine of parallel sentences per layer for one checkpoint."""

import torch

from xlprobe.integrity import check_checkpoint
from xlprobe.logs import log_to
from xlprobe.similarity import run_similarity

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    check_checkpoint(snakemake.input.checkpoint)  # its recorded files, before loading it
    run_similarity(
        snakemake.params.model,
        snakemake.wildcards.step,
        snakemake.params.similarity,
        snakemake.output[0],
        demo_dir=snakemake.params.demo_dir,
        cache_dir=snakemake.params.cache_dir,
        seed=snakemake.params.seed,
    )
