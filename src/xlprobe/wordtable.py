"""A treebank's CoNLL-U files -> its word table (one row per surface token) and attribute table.

Word table columns: sentence_id, word_id, form, lemma, upos, tags, split, then one column per UniMorph
dimension present. sentence_id numbers the sentences 0.. across the treebank's files in sorted file
name order. A multiword token is one row: word_id `2-3`, its surface form, lemma and UPOS joined with
`+` from its words (`de+le`, `ADP+DET`; the joined lemma is what the split follows), the union of its
words' tags, and the union of their attributes minus any attribute that two of its words carry.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from xlprobe.io import read_tsv, write_tsv
from xlprobe.splits import attribute_table, check_fractions, split_tokens
from xlprobe.treebank import Token, read_treebank
from xlprobe.unimorph import Converter, dimensions, tags_to_attributes

log = logging.getLogger(__name__)

BASE_COLUMNS = ["sentence_id", "word_id", "form", "lemma", "upos", "tags", "split"]


@functools.lru_cache(maxsize=100_000)
def _attributes(tags: tuple[str, ...]) -> dict[str, str]:
    return tags_to_attributes(tags)


def _split_lemma(lemma: str, form: str) -> str:
    # Some treebanks leave lemmas out (`_`): the form stands in, so such words still spread over splits.
    return form if lemma == "_" else lemma


def _token_row(token: Token, converter: Converter) -> tuple[str, str, tuple[str, ...], dict[str, str]]:
    """(lemma, upos, tags, attributes) of a surface token."""
    if len(token.words) == 1:
        word = token.words[0]
        tags = converter.tags(word.upos, word.feats, word.form)
        return _split_lemma(word.lemma, word.form), word.upos, tags, _attributes(tags)
    per_word = [converter.tags(w.upos, w.feats, w.form) for w in token.words]
    seen: dict[str, list[str]] = {}
    for tags in per_word:
        for attribute, value in _attributes(tags).items():
            seen.setdefault(attribute, []).append(value)
    # an attribute that two words carry (even with one value) is ambiguous for the token: dropped
    attributes = {attribute: values[0] for attribute, values in seen.items() if len(values) == 1}
    lemma = "+".join(_split_lemma(w.lemma, w.form) for w in token.words)
    upos = "+".join(w.upos for w in token.words)
    return lemma, upos, tuple(sorted(set().union(*per_word))), attributes


def conllu_files(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """CoNLL-U files among `inputs`; a directory stands for the *.conllu files in it."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(str(p) for p in sorted(path.glob("*.conllu")))
        else:
            files.append(str(path))
    return files


def word_table(
    files: Iterable[str | os.PathLike], language: str, fractions: Mapping[str, float], seed: int
) -> pd.DataFrame:
    """The word table of one treebank (all files pooled)."""
    converter = Converter(language)
    columns: dict[str, list] = {name: [] for name in BASE_COLUMNS if name != "split"}
    attribute_rows: list[dict[str, str]] = []
    for sentence_id, sentence in enumerate(
        tqdm(read_treebank(files), desc="sentences", unit=" sent", mininterval=5)
    ):
        for token in sentence.tokens:
            lemma, upos, tags, attributes = _token_row(token, converter)
            columns["sentence_id"].append(sentence_id)
            columns["word_id"].append(token.id)
            columns["form"].append(token.form)
            columns["lemma"].append(lemma)
            columns["upos"].append(upos)
            columns["tags"].append(";".join(tags) if tags else "_")
            attribute_rows.append(attributes)
    table = pd.DataFrame(columns)
    table["split"] = split_tokens(columns["lemma"], fractions, seed)
    values = pd.DataFrame.from_records(attribute_rows, index=table.index)
    present = [name for name in dimensions() if name in values.columns]
    return pd.concat([table, values[present]], axis=1)


def read_word_table(path: str | os.PathLike) -> pd.DataFrame:
    """A word table as written, every column text (Person `3` stays "3", not 3.0; ids as written).

    The one reader of word tables: the dumps, the probes and the transfer stage all read through it.
    """
    return read_tsv(path, dtype=str)


def sentence_rows(words: pd.DataFrame, source: str | os.PathLike = "word table") -> list[tuple[str, np.ndarray]]:
    """(sentence id, its rows in word order) per sentence, sentences in first-appearance order.

    Words are ordered by word_id, a multiword token (`3-4`) by its first number; ties keep table order.
    """
    missing = {"sentence_id", "word_id"} - set(words.columns)
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    order_key = pd.to_numeric(words["word_id"].astype(str).str.extract(r"^(\d+)", expand=False))
    if order_key.isna().any():
        row = int(np.flatnonzero(order_key.isna().to_numpy())[0])
        raise ValueError(f"{source}: word_id '{words['word_id'].iloc[row]}' in data row {row + 1} is not a number")
    codes, ids = pd.factorize(words["sentence_id"], sort=False)  # first-appearance order
    order = np.lexsort((order_key.to_numpy(), codes))  # stable: ties keep table order
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [(ids[codes[rows[0]]], rows) for rows in np.split(order, bounds) if len(rows)]


def read_attribute_table(path: str | os.PathLike) -> pd.DataFrame:
    """An attribute table (`build_word_table`'s second file) with `kept` as booleans.

    The one parser of `kept`: `True`/`False` as written (any case, or 1/0); anything else is an error
    naming its line, never a silent false.
    """
    table = read_tsv(path, dtype={"attribute": str, "value": str, "kept": str})
    if not {"attribute", "value", "kept"} <= set(table.columns):
        raise ValueError(f"{path}: not an attribute table (needs columns attribute, value, kept)")
    kept = table["kept"].str.strip().str.lower().map({"true": True, "1": True, "false": False, "0": False})
    if kept.isna().any():
        line = int(np.flatnonzero(kept.isna().to_numpy())[0]) + 2  # header is line 1
        raise ValueError(f"{path}, line {line}: 'kept' must be true or false")
    return table.assign(kept=kept.astype(bool))


def probed_attributes(attributes_path: str | os.PathLike) -> list[str]:
    """The attributes an attribute table keeps for probing."""
    table = read_attribute_table(attributes_path)
    return sorted(set(table.loc[table["kept"], "attribute"]))


def build_word_table(
    treebank_files: Iterable[str | os.PathLike],
    words_out: str | os.PathLike,
    attributes_out: str | os.PathLike,
    treebank: Mapping[str, Any],
    words: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Write the word table and the attribute table (counts per split, `kept`) of one treebank.

    `treebank` is the config entry plus its id ({id, folder, language}); `words` the config's `words`
    (split shares, min_count). A treebank with no probe-able attribute still gets both files (kept all
    false) and a warning. Returns a summary.
    """
    check_fractions(words.get("split", {}))
    if "min_count" not in words:
        raise ValueError("config words.min_count: missing")
    files = conllu_files(treebank_files)
    name = treebank.get("id", treebank.get("folder", "?"))
    if not files:
        raise FileNotFoundError(f"treebank {name!r}: no .conllu files in {list(map(str, treebank_files))}")
    log.info("treebank %s (%s): %s", name, treebank["language"], ", ".join(files))
    table = word_table(files, treebank["language"], words["split"], seed)
    dims = [column for column in table.columns if column not in BASE_COLUMNS]
    attributes = attribute_table(table[dims], table["split"].tolist(), int(words["min_count"]), dims)
    write_tsv(words_out, table)
    write_tsv(attributes_out, attributes)
    kept = attributes[attributes["kept"].astype(bool)]  # an empty table's column has no dtype: no mask
    summary = {
        "treebank": name,
        "sentences": int(table["sentence_id"].nunique()),
        "tokens": len(table),
        "tokens_per_split": table["split"].value_counts().reindex(["train", "dev", "test"], fill_value=0).tolist(),
        "probed_attributes": sorted(kept["attribute"].unique().tolist()),
        "probed_values": len(kept),
    }
    log.info("summary: %s", summary)
    if not len(table):
        log.warning("treebank %s: no words in %s; nothing to probe", name, ", ".join(files))
    elif not summary["probed_attributes"]:
        log.warning(
            "treebank %s: no attribute has >= 2 values with >= %s tokens in every split; nothing to probe",
            name,
            words["min_count"],
        )
    return summary
