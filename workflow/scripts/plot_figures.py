"""Rule plot_figures: every figure of FIGURES as PNG and PDF."""

from pathlib import Path

from xlprobe.logs import log_to
from xlprobe.plots import plot_figures

with log_to(snakemake.log[0]):
    plot_figures(
        snakemake.input.alignment,
        snakemake.input.attributes,
        snakemake.input.correlations,
        list(snakemake.input.overlap),
        list(snakemake.input.similarity),
        {Path(png).stem: (png, pdf) for png, pdf in zip(snakemake.output.png, snakemake.output.pdf)},
        alpha=snakemake.params.analysis["alpha"],
    )
