# One forward pass per sentence batch writes every configured layer, float16, row-aligned with the word table.


rule dump_activations:
    input:
        checkpoint=checkpoint_input,
        words=lambda wc: words_path(wc.treebank),
    output:
        layers=expand(f"{ACTIVATIONS}/layer{{layer}}.npy", layer=LAYERS, allow_missing=True),
        meta=f"{ACTIVATIONS}/meta.json",
    params:
        model=model_slice,
        activations=dump_settings(),
        max_subwords=config["words"]["max_subwords"],
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
    log:
        f"{LOGS}/dump_activations/{{model}}/{{step}}/{{treebank}}.log",
    benchmark:
        f"{BENCH}/dump_activations/{{model}}/{{step}}/{{treebank}}.tsv"
    threads: sized(2, 1)
    resources:
        gpu=1,
        mem_mb=sized(lambda wc, input: dump_request(wc, input)["mem_mb"], 2000),
        runtime=sized(lambda wc, input: dump_request(wc, input)["runtime"], 30),
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/dump_activations.py"
