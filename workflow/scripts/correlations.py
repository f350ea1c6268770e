"""Rule correlations: overlap vs transfer and similarity, per model and pooled, with bootstrap intervals."""

from xlprobe.correlation import write_correlations
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    write_correlations(
        snakemake.input.alignment,
        snakemake.output[0],
        resamples=snakemake.params.analysis["bootstrap"],
        seed=snakemake.params.seed,
    )
