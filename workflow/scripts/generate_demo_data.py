"""Rule generate_demo_data: the demo's synthetic treebanks, pre-training text and parallel text."""

from xlprobe.demo.synthetic import generate_from_config
from xlprobe.logs import log_to

with log_to(snakemake.log[0]):
    generate_from_config(snakemake.params.demo, ud_root=snakemake.params.ud_root, seed=snakemake.params.seed)
