# xlprobe: cross-lingual neuron overlap vs zero-shot transfer across pre-training checkpoints.
#   snakemake --cores 2 --configfile config/demo.yaml    the embedded offline demo
#   snakemake --cores 8 --use-conda                      the paper's experiment (config.yaml)
from snakemake.utils import min_version

min_version("8.10")


# The paper's experiment by default. A --configfile replaces it rather than being merged into it
# (Snakemake merges dictionaries, which would mix the demo's treebanks with the paper's).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/activations.smk"
include: "rules/probing.smk"
include: "rules/overlap.smk"
include: "rules/probe_transfer.smk"
include: "rules/transfer.smk"
include: "rules/similarity.smk"
include: "rules/checks.smk"
include: "rules/analysis.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
