# Is each checkpoint what its name says? Its LM loss on a fixed multilingual sample (the treebanks'
# held-out sentences in every config, the similarity section's parallel text where configured; written
# once by lm_loss_sample) and its weight hashes (recorded at prefetch for hub checkpoints), one JSON per
# checkpoint; the alignment table flags duplicates and suspects from them (xlprobe.checks).

LM_LOSS_SAMPLE = f"{RESULTS}/lm_loss/sample.json"


rule lm_loss_sample:
    input:
        treebanks=lambda wc: [path for tb in TREEBANKS for path in treebank_input(tb)],
        parallel=similarity_data_input,
        hub=similarity_hub_input,
    output:
        LM_LOSS_SAMPLE,
    params:
        treebanks=lm_loss_treebanks,
        similarity=canonical(lm_loss_text()),
        sentences=config["checks"]["lm_loss_sentences"],
        seed=config["seed"],
        cache_dir=config.get("hf_cache"),
        demo_dir=DEMO_DIR,
    log:
        f"{LOGS}/lm_loss_sample.log",
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/lm_loss_sample.py"


rule lm_loss:
    input:
        checkpoint=checkpoint_input,
        sample=LM_LOSS_SAMPLE,
    output:
        LM_LOSS,
    params:
        model=model_slice,
        # not the margin (the verdict, read by alignment_table) nor the sample's settings (its own rule)
        checks=canonical({key: config["checks"][key] for key in ("batch_size", "device")}),
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
