"""Rule compute_overlap: top-k neuron overlap of every treebank pair for one (model, step, layer)."""

from xlprobe.logs import log_to
from xlprobe.overlap import compute_overlap

with log_to(snakemake.log[0]):
    compute_overlap(
        list(snakemake.input.probes), snakemake.output[0], k=snakemake.params.k, seed=snakemake.params.seed,
        point={"model": snakemake.wildcards.model, "step": snakemake.wildcards.step,
               "layer": int(snakemake.wildcards.layer)},
    )
