"""Rule alignment_table: overlap, transfer, similarity and the checkpoint checks of every (model, step, layer)."""

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
        alpha=snakemake.params.analysis["alpha"],
        check_paths=list(snakemake.input.lm_loss),
        margin=snakemake.params.checks["suspect_margin"],
        stability_paths=list(snakemake.input.stability),
        seed=snakemake.params.seed,
        probe_transfer_paths=list(snakemake.input.probe_transfer),
    )
