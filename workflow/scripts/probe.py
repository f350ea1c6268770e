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
        replicates=int(snakemake.params.probe["replicates"]),
        seed=int(snakemake.params.seed),
        threads=snakemake.threads,
        labels={**snakemake.params.point, "language": snakemake.params.language},
    )
