# Treebanks -> word tables (one row per word, UniMorph attributes, lemma-disjoint split).


if RESOLVED.is_demo:

    rule generate_demo_data:
        output:
            treebanks=demo_treebank_files(),
            text=expand(f"{DEMO_DIR}/text/{{language}}.txt", language=config["demo"]["languages"]),
            parallel=expand(
                f"{DEMO_DIR}/parallel/{{language}}.txt", language=config["demo"]["languages"]
            ),
            summary=f"{DEMO_DIR}/demo_data.json",
        params:
            demo=canonical(config["demo"]),
            seed=config["seed"],
            # ud_root/<folder>/<file>: derived from the outputs rather than repeated here
            ud_root=lambda wildcards, output: str(Path(output.treebanks[0]).parents[1]),
        log:
            f"{LOGS}/generate_demo_data.log",
        conda:
            "../envs/analysis.yaml"
        script:
            f"../{SCRIPTS}/generate_demo_data.py"


checkpoint build_word_table:
    input:
        treebank=lambda wc: treebank_input(wc.treebank),
    output:
        words=words_path("{treebank}"),
        attributes=report(
            attributes_path("{treebank}"),
            caption="../report/attributes.rst",
            category="Data",
            subcategory="Attributes per treebank",
            labels={"treebank": "{treebank}"},
        ),
    params:
        treebank=lambda wc: canonical({"id": wc.treebank, **config["treebanks"][wc.treebank]}),
        words=canonical(config["words"]),
        seed=config["seed"],
    log:
        f"{LOGS}/build_word_table/{{treebank}}.log",
    benchmark:
        f"{BENCH}/build_word_table/{{treebank}}.tsv"
    threads: 1
    resources:
        mem_mb=sized(4000, 2000),
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/build_word_table.py"


# A UD release fetched once on the submit host, then only the configured treebanks extracted.
localrules:
    download_ud_release,
    extract_treebank,


rule download_ud_release:
    output:
        "resources/downloads/ud-treebanks.tgz",
    params:
        url=config.get("ud_download", {}).get("url", UD_RELEASE_URL),
        sha256=config.get("ud_download", {}).get("sha256"),
    log:
        f"{LOGS}/download_ud_release.log",
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/download_ud_release.py"


rule extract_treebank:
    input:
        "resources/downloads/ud-treebanks.tgz",
    output:
        directory(f"{config['ud_root']}/{{folder}}"),
    log:
        f"{LOGS}/extract_treebank/{{folder}}.log",
    conda:
        "../envs/analysis.yaml"
    script:
        f"../{SCRIPTS}/extract_treebank.py"


# Hub datasets (format: hub tasks, similarity.hub) into the datasets cache, once, on the submit host
# (localrules): the jobs that read them run offline (common.smk).
localrules:
    prefetch_dataset,


rule prefetch_dataset:
    output:
        PREFETCH_MARKER,
    params:
        repo=lambda wc: repo_of(wc.dataset),
        splits=lambda wc: HUB_DATASETS.get((repo_of(wc.dataset), wc.config), []),
        cache_dir=config.get("hf_cache"),
    log:
        f"{LOGS}/prefetch_dataset/{{dataset}}/{{config}}.log",
    conda:
        "../envs/gpu.yaml"
    script:
        f"../{SCRIPTS}/prefetch_dataset.py"
