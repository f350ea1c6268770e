"""Rule download_checkpoint: one (model, step) into the hub cache (submit host)."""

from xlprobe.hubdata import go_online

go_online()  # the workflow runs every other job offline; before huggingface_hub is imported

from xlprobe.checkpoints import download
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    model = snakemake.params.model
    download(model, model["step"], snakemake.output[0], cache_dir=snakemake.params.cache_dir)
