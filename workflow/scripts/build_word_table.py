"""Rule build_word_table: a treebank's CoNLL-U files -> word table + attribute table."""

from xlprobe.logs import log_to
from xlprobe.wordtable import build_word_table

smk = snakemake

with log_to(smk.log[0]):
    build_word_table(
        smk.input.treebank,
        words_out=smk.output.words,
        attributes_out=smk.output.attributes,
        treebank=smk.params.treebank,
        words=smk.params.words,
        seed=smk.params.seed,
    )
