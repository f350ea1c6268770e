# Latent-variable intrinsic probe per attribute, then greedy top-k neuron selection.


rule probe:
    input:
        words=lambda wc: words_path(wc.treebank),
        attributes=lambda wc: attributes_path(wc.treebank),
        # A dump job writes all layers in one pass, so adding a layer rewrites the other layers' files
        # (with the same numbers). ancient(): their time stamps do not rerun this probe; what would
        # change the numbers is in params (model, dump settings) and reruns it through them.
        activations=ancient(f"{ACTIVATIONS}/layer{{layer}}.npy"),
        meta=ancient(f"{ACTIVATIONS}/meta.json"),
    output:
        PROBE,
    params:
        probe=canonical(config["probe"]),
        seed=config["seed"],
        model=model_slice,
        dump=dump_settings(),
        # model, seed, step, layer, treebank: written into the result as data.
        point=result_point,
        # Written into the result, so that the overlap knows which pairs share a language.
        language=lambda wc: config["treebanks"][wc.treebank]["language"],
    log:
        f"{LOGS}/probe/{{model}}/{{step}}/layer{{layer}}/{{treebank}}.log",
    benchmark:
        f"{BENCH}/probe/{{model}}/{{step}}/layer{{layer}}/{{treebank}}.tsv"
    # A GPU only when probe.device names one (auto = CPU: never a GPU the job did not ask for).
    # One thread: the probe works on cache-sized blocks that a second thread does not speed up, and
    # on a busy node torch's threads wait on each other (English EWT: 266 s per epoch with 2).
    threads: 1
    resources:
        gpu=int(PROBE_DEVICE != "cpu"),
        mem_mb=sized(lambda wc, input: probe_request(wc, input)["mem_mb"], 2000),
        # probe_request counts probe.replicates: one job trains them all on the dump it loads once.
        runtime=sized(lambda wc, input: probe_request(wc, input)["runtime"], 30),
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/probe.py"
