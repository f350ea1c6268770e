# Cosine similarity of parallel sentences per layer (the paper's supporting analysis).


rule similarity:
    input:
        checkpoint=checkpoint_input,
        parallel=similarity_data_input,
        hub=similarity_hub_input,
    output:
        table=SIMILARITY,
        # Config slice, library versions, parallel files and the checkpoint (repo, revision, commit).
        provenance=sidecar_path(SIMILARITY),
    params:
        model=model_slice,
        similarity=canonical(config.get("similarity", {})),
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
        seed=config["seed"],
    log:
        f"{LOGS}/similarity/{{model}}/{{step}}.log",
    threads: sized(2, 1)
    resources:
        gpu=1,
        mem_mb=sized(16000, 2000),
        runtime=120,
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/similarity.py"
