# Cosine similarity of parallel sentences per layer (the paper's supporting analysis).


rule similarity:
    input:
        checkpoint=checkpoint_input,
        parallel=similarity_data_input,
    output:
        SIMILARITY,
    params:
        model=model_slice,
        similarity=canonical(config.get("similarity", {})),
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
    log:
        f"{LOGS}/similarity/{{model}}/{{step}}.log",
    # The demo's tiny models run fastest single-threaded (two jobs at once on --cores 2).
    threads: 1 if "demo" in config else 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/similarity.py"
