"""The figures the workflow draws, named once: plot_figures draws them, the workflow asks for them.

Light on purpose (no matplotlib, no torch): Snakemake's start and the analysis stage both import it.
"""

# Every figure plot_figures draws, in the order they are listed; similarity_vs_step needs `similarity`.
FIGURE_NAMES = (
    "overlap_vs_step",
    "transfer_vs_step",
    "overlap_vs_transfer",
    "overlap_heatmaps",
    "overlap_vs_k",
    "overlap_vs_lm_loss",
    "overlap_over_chance_vs_step",
    "stability_vs_step",
    "measures_vs_transfer",
    "similarity_vs_step",
)
