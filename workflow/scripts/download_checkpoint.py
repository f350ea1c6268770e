from xlprobe.checkpoints import download
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    model = snakemake.params.model
    download(model, model["step"], snakemake.output[0], cache_dir=snakemake.params.cache_dir)
