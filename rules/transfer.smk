# Fine-tune each checkpoint on the source language, evaluate zero-shot on the targets.


rule transfer:
    input:
        checkpoint=checkpoint_input,
        data=lambda wc: transfer_data_input(wc.task),
        hub=lambda wc: transfer_hub_input(wc.task),
    output:
        metrics=TRANSFER,
        # Training history, example counts, provenance (the TSV keeps the contract's four columns).
        details=TRANSFER.removesuffix(".tsv") + ".json",
    params:
        model=model_slice,
        task=lambda wc: canonical({"name": wc.task, **config["transfer"]["tasks"][wc.task]}),
        transfer=canonical({k: v for k, v in config.get("transfer", {}).items() if k != "tasks"}),
        seed=config["seed"],
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
    log:
        f"{LOGS}/transfer/{{model}}/{{step}}/{{task}}.log",
    benchmark:
        f"{BENCH}/transfer/{{model}}/{{step}}/{{task}}.tsv"
    threads: sized(2, 1)
    resources:
        gpu=1,
        mem_mb=sized(lambda wc: transfer_request(wc)["mem_mb"], 2000),
        runtime=sized(lambda wc: transfer_request(wc)["runtime"], 60),
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/transfer.py"
