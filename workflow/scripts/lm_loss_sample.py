"""Rule lm_loss_sample: the fixed sentences every checkpoint's LM loss is computed on."""

from xlprobe.lm_loss import write_sample
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    write_sample(
        snakemake.output[0],
        snakemake.params.treebanks,
        snakemake.params.similarity,
        snakemake.params.sentences,
        snakemake.params.seed,
        demo_dir=snakemake.params.demo_dir,
        cache_dir=snakemake.params.cache_dir,
    )
