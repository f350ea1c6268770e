"""Rule generate_demo_data: the demo's synthetic treebanks, pre-training text and parallel text."""

from xlprobe.logs import log_to
from xlprobe.synthetic import generate_demo_data

with log_to(snakemake.log[0]):
    demo = snakemake.params.demo
    generate_demo_data(
        ud_root=snakemake.params.ud_root,
        demo_dir=demo["dir"],
        languages=demo["languages"],
        treebank_sentences=demo.get("treebank_sentences", 1500),
        pretrain_sentences=demo.get("pretrain_sentences", 12000),
        parallel_sentences=demo.get("parallel_sentences", 300),
        shared_vocabulary=demo.get("shared_vocabulary", 0.5),
        seed=snakemake.params.seed,
    )
