# Cross-lingual overlap of the top-k neuron sets, with chance level and hypergeometric significance.


rule compute_overlap:
    input:
        probes=lambda wc: probe_files(wc.model, wc.step, wc.layer),
    output:
        table=OVERLAP,
        # Per treebank and attribute: how many top-k picks the probe replicates share.
        stability=STABILITY,
        # Config slice, library versions, probe files and their checkpoint (repo, revision, commit).
        provenance=sidecar_path(OVERLAP),
    params:
        k=config["probe"]["k"],
        seed=config["seed"],
        point=result_point,
    log:
        f"{LOGS}/compute_overlap/{{model}}/{{step}}/layer{{layer}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/compute_overlap.py"
