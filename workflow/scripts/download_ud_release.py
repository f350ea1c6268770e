from xlprobe.logs import log_to
from xlprobe.ud_release import download

with log_to(snakemake.log[0]):
    download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
