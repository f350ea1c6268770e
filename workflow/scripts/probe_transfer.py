"""Rule probe_transfer: cross-lingual linear readouts of every attribute at one (model, step, layer)."""

from xlprobe.identity import model_point
from xlprobe.logs import log_to
from xlprobe.probe_transfer import run_probe_transfer

with log_to(snakemake.log[0]):
    inputs = {}
    for key, path in snakemake.input.items():
        treebank, kind = key.rsplit("__", 1)
        inputs.setdefault(treebank, {})[kind] = path
    run_probe_transfer(
        inputs,
        snakemake.params.languages,
        snakemake.output.table,
        snakemake.params.settings,
        snakemake.params.seed,
        point=model_point(snakemake.params.model, snakemake.wildcards.step, layer=snakemake.wildcards.layer),
        threads=snakemake.threads,
    )
