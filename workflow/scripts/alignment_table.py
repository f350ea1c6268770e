"""Rule alignment_table: overlap, transfer and similarity of every (model, step, layer) in one table."""

from xlprobe.alignment import write_alignment_table
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    write_alignment_table(
        list(snakemake.input.overlap),
        list(snakemake.input.transfer),
        list(snakemake.input.similarity),
        snakemake.output.alignment,
        snakemake.output.attributes,
        targets=snakemake.params.tasks,
        alpha=snakemake.params.analysis.get("alpha", 0.05),
    )
