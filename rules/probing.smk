# Latent-variable intrinsic probe per attribute, then greedy top-k neuron selection.


rule probe:
    input:
        words=lambda wc: words_path(wc.treebank),
        attributes=lambda wc: attributes_path(wc.treebank),
        activations=f"{ACTIVATIONS}/layer{{layer}}.npy",
        meta=f"{ACTIVATIONS}/meta.json",
    output:
        PROBE,
    params:
        probe=canonical(config["probe"]),
        seed=config["seed"],
    log:
        f"{LOGS}/probe/{{model}}/{{step}}/layer{{layer}}/{{treebank}}.log",
    benchmark:
        f"{BENCH}/probe/{{model}}/{{step}}/layer{{layer}}/{{treebank}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/probe.py"
