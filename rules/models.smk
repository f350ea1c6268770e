# Checkpoints: the demo's own tiny models, or Hugging Face checkpoints fetched once on the submit host.


if DEMO_MODELS:

    rule train_demo_tokenizer:
        input:
            text=expand(f"{DEMO_DIR}/text/{{language}}.txt", language=config["demo"]["languages"]),
        output:
            f"{DEMO_DIR}/tokenizer/tokenizer.json",
        params:
            vocab_size=config["demo"]["tokenizer_vocab_size"],
        log:
            f"{LOGS}/train_demo_tokenizer.log",
        conda:
            "../envs/gpu.yaml"
        script:
            f"../{SCRIPTS}/train_demo_tokenizer.py"

    rule pretrain_demo_model:
        input:
            tokenizer=f"{DEMO_DIR}/tokenizer/tokenizer.json",
            text=expand(f"{DEMO_DIR}/text/{{language}}.txt", language=config["demo"]["languages"]),
        output:
            directory(f"{DEMO_DIR}/models/{{model}}"),
        params:
            pretrain=lambda wc: canonical(config["models"][RUNS[wc.model]["model"]]["pretrain"]),
            # The run's pre-training seed (initialisation and data order); the config's without `seeds`.
            seed=lambda wc: config["seed"] if RUNS[wc.model]["seed"] is None else RUNS[wc.model]["seed"],
        log:
            f"{LOGS}/pretrain_demo_model/{{model}}.log",
        benchmark:
            f"{BENCH}/pretrain_demo_model/{{model}}.tsv"
        # Both demo models train side by side, one core each; everything else waits on them.
        threads: 1
        priority: 50
        resources:
            mem_mb=2000,
        conda:
            "../envs/gpu.yaml"
        script:
            f"../{SCRIPTS}/pretrain_demo_model.py"


# Runs on the submit host (localrules): compute nodes often have no internet.
localrules:
    download_checkpoint,


rule download_checkpoint:
    output:
        CHECKPOINT_MARKER,
    params:
        model=model_slice,
        cache_dir=config.get("hf_cache"),
    log:
        f"{LOGS}/download_checkpoint/{{model}}/{{step}}.log",
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/download_checkpoint.py"
