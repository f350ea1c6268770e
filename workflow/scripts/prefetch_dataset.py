"""Rule prefetch_dataset: one hub dataset config, every split, into the datasets cache (submit host)."""

from xlprobe.hubdata import go_online

go_online()  # the workflow runs every other job offline; before datasets is imported

from xlprobe.hubdata import prefetch
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    prefetch(
        snakemake.params.repo,
        snakemake.wildcards.config,
        snakemake.params.splits,
        snakemake.output[0],
        cache_dir=snakemake.params.cache_dir,
    )
