"""Rule compute_overlap: top-k neuron overlap of every treebank pair for one (model, seed, step, layer)."""

from xlprobe.logs import log_to
from xlprobe.overlap import compute_overlap

with log_to(snakemake.log[0]):
    compute_overlap(
        list(snakemake.input.probes), snakemake.output.table, k=snakemake.params.k, seed=snakemake.params.seed,
        point=snakemake.params.point, stability_output=snakemake.output.stability,
    )
