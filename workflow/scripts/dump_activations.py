import torch

from xlprobe.activations import dump_activations
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    activations = snakemake.params.activations
    dump_activations(
        snakemake.input.words,
        # output.layers follows the order of activations.layers (rules/activations.smk).
        dict(zip([int(layer) for layer in activations["layers"]], snakemake.output.layers)),
        snakemake.output.meta,
        model=snakemake.params.model,
        activations=activations,
        max_subwords=snakemake.params.max_subwords,
        cache_dir=snakemake.params.cache_dir,
        demo_dir=snakemake.params.demo_dir,
    )
