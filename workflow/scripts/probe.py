"""Rule probe: train the latent-variable probe per attribute of one treebank and select its top neurons."""

from xlprobe.logs import log_to
from xlprobe.probing import probe_treebank

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake is injected by the script directive)
    probe_treebank(
        snakemake.input.words,  # noqa: F821
        snakemake.input.attributes,  # noqa: F821
        snakemake.input.activations,  # noqa: F821
        snakemake.input.meta,  # noqa: F821
        snakemake.output[0],  # noqa: F821
        probe_config=dict(snakemake.params.probe),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        labels={
            "model": snakemake.wildcards.model,  # noqa: F821
            "step": snakemake.wildcards.step,  # noqa: F821
            "layer": int(snakemake.wildcards.layer),  # noqa: F821
            "treebank": snakemake.wildcards.treebank,  # noqa: F821
        },
    )
