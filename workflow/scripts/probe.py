"""Rule probe: train the latent-variable probe per attribute of one treebank and select its top neurons."""

from xlprobe.logs import log_to
from xlprobe.probing import probe_treebank

with log_to(snakemake.log[0]):
    probe_treebank(
        snakemake.input.words,
        snakemake.input.attributes,
        snakemake.input.activations,
        snakemake.input.meta,
        snakemake.output[0],
        probe_config=snakemake.params.probe,
        seed=int(snakemake.params.seed),
        threads=snakemake.threads,
        labels={
            "model": snakemake.wildcards.model,
            "step": snakemake.wildcards.step,
            "layer": int(snakemake.wildcards.layer),
            "treebank": snakemake.wildcards.treebank,
            "language": snakemake.params.language,
        },
    )
