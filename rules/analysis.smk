# Cheap aggregates over the whole grid: alignment table, correlations, figures, report.
# Each table has a provenance sidecar; the figures have none (the report carries the provenance).


rule alignment_table:
    input:
        overlap=all_overlap_files(),
        stability=all_stability_files(),
        transfer=all_transfer_files(),
        similarity=all_similarity_files(),
        lm_loss=all_lm_loss_files(),
        probe_transfer=all_probe_transfer_files(),
    output:
        alignment=report(
            f"{RESULTS}/alignment.tsv",
            caption="../report/alignment.rst",
            category="Tables",
        ),
        attributes=f"{RESULTS}/alignment_attributes.tsv",
        # Config slice, library versions and input files; checkpoints are in the inputs' sidecars.
        provenance=[sidecar_path(f"{RESULTS}/{name}.tsv") for name in ("alignment", "alignment_attributes")],
    params:
        analysis=canonical(config.get("analysis", {})),
        tasks=canonical({name: task.get("targets") for name, task in config.get("transfer", {}).get("tasks", {}).items()}),
        checks=canonical(config.get("checks", {})),
        # Seeds the resampling of the overlap's replicate interval.
        seed=config["seed"],
    log:
        f"{LOGS}/alignment_table.log",
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/alignment_table.py"


rule correlations:
    input:
        alignment=f"{RESULTS}/alignment.tsv",
    output:
        table=report(
            f"{RESULTS}/correlations.tsv",
            caption="../report/correlations.rst",
            category="Tables",
        ),
        provenance=sidecar_path(f"{RESULTS}/correlations.tsv"),
    params:
        analysis=canonical(config.get("analysis", {})),
        seed=config["seed"],
    log:
        f"{LOGS}/correlations.log",
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/correlations.py"


rule plot_figures:
    input:
        alignment=f"{RESULTS}/alignment.tsv",
        attributes=f"{RESULTS}/alignment_attributes.tsv",
        correlations=f"{RESULTS}/correlations.tsv",
        overlap=all_overlap_files(),
        similarity=all_similarity_files(),
    output:
        png=[
            report(
                f"{RESULTS}/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
        pdf=[f"{RESULTS}/figures/{name}.pdf" for name in FIGURES],
    params:
        analysis=canonical(config.get("analysis", {})),
    log:
        f"{LOGS}/plot_figures.log",
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/plot_figures.py"
