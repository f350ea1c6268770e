# Is each checkpoint what its name says? Its LM loss on a fixed multilingual sample (the similarity
# section's sentences) and its weight hashes (recorded at prefetch for hub checkpoints), one JSON per
# checkpoint; the alignment table flags duplicates and suspects from them (xlprobe.checks).


rule lm_loss:
    input:
        checkpoint=checkpoint_input,
        parallel=similarity_data_input,
        hub=similarity_hub_input,
    output:
        LM_LOSS,
    params:
        model=model_slice,
        # the text of the sample only: the similarity's layers or pooling do not change the loss
        similarity=canonical(lm_loss_text()),
        checks=canonical(config.get("checks", {})),
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
    log:
        f"{LOGS}/lm_loss/{{model}}/{{step}}.log",
    benchmark:
        f"{BENCH}/lm_loss/{{model}}/{{step}}.tsv"
    threads: sized(2, 1)
    resources:
        gpu=1,
        mem_mb=sized(16000, 2000),
        runtime=60,
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/lm_loss.py"
