import torch

from xlprobe.activations import dump_activations
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    # Layers and batch size come from the config, not from params, so that changing them is no reason to
    # rerun a finished dump (rules/common.smk, dump_settings). output.layers follows activations.layers.
    layers = [int(layer) for layer in snakemake.config["activations"]["layers"]]
    activations = {**snakemake.params.activations, "batch_size": snakemake.config["activations"]["batch_size"]}
    dump_activations(
        snakemake.input.words,
        dict(zip(layers, snakemake.output.layers)),
        snakemake.output.meta,
        model=snakemake.params.model,
        activations=activations,
        max_subwords=snakemake.params.max_subwords,
        cache_dir=snakemake.params.cache_dir,
        demo_dir=snakemake.params.demo_dir,
        checkpoint_input=snakemake.input.checkpoint,
    )
