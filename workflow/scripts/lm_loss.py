"""Rule lm_loss: one checkpoint's LM loss on the fixed samples and its weight hashes."""

import torch

from xlprobe.integrity import check_checkpoint
from xlprobe.lm_loss import run_lm_loss
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    model = snakemake.params.model
    checkpoint = snakemake.input.checkpoint
    check_checkpoint(snakemake.input.checkpoint)  # its recorded files, before loading it
    run_lm_loss(
        model,
        model["step"],
        snakemake.input.sample,
        snakemake.params.checks,
        snakemake.output[0],
        # the download marker (hub, local) holds the hashes made at prefetch; a demo model's folder does not
        marker=checkpoint if str(checkpoint).endswith(".json") else None,
        demo_dir=snakemake.params.demo_dir,
        cache_dir=snakemake.params.cache_dir,
    )
