# Cross-lingual probe transfer: a linear readout of each attribute trained on one language's words and
# scored on another's, per (model, step, layer), over the dumps on disk.


rule probe_transfer:
    input:
        unpack(probe_transfer_input),
    output:
        table=PROBE_TRANSFER,
        # Config slice, library versions, input files and the point (model, step, layer).
        provenance=sidecar_path(PROBE_TRANSFER),
    params:
        settings=canonical(config["probe_transfer"]),
        seed=config["seed"],
        model=model_slice,
        dump=dump_settings(),
        languages=lambda wc: {tb: config["treebanks"][tb]["language"] for tb in TREEBANKS},
    log:
        f"{LOGS}/probe_transfer/{{model}}/{{step}}/layer{{layer}}.log",
    benchmark:
        f"{BENCH}/probe_transfer/{{model}}/{{step}}/layer{{layer}}.tsv"
    threads: 1
    resources:
        mem_mb=sized(lambda wc, input: probe_transfer_request(wc, input)["mem_mb"], 2000),
        runtime=sized(lambda wc, input: probe_transfer_request(wc, input)["runtime"], 30),
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/probe_transfer.py"
