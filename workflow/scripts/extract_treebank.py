from xlprobe.logs import log_to
from xlprobe.ud_release import extract_treebank

with log_to(snakemake.log[0]):
    extract_treebank(snakemake.input[0], snakemake.wildcards.folder, snakemake.output[0])
