"""Reading the transfer tasks' data: UD part-of-speech sentences and XNLI sentence pairs.

Each reader returns plain Python examples; a POS example is `(words, tags)` (a tag of None marks a
word that stays in the input but is not scored), an XNLI example is `(premise, hypothesis, label)`.
`load_task` gathers one task's source training set, source dev set and per-target evaluation sets.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlprobe.inputs import hub_dataset, hub_task_splits, task_format
from xlprobe.wordtable import read_word_table, sentence_rows

log = logging.getLogger(__name__)

UPOS = [
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
]
# The order of the Hugging Face XNLI copy's class ids.
NLI_LABELS = ["entailment", "neutral", "contradiction"]
LABELS = {"udpos": UPOS, "xnli": NLI_LABELS}

# Share of the source sentences held out as source dev where no dev file is given.
SOURCE_DEV_SHARE = 0.1

# XTREME's Hugging Face copy names UD-POS configs by language name.
TaggedSentence = tuple[list[str], list["str | None"]]
SentencePair = tuple[str, str, str]


@dataclass
class TaskData:
    """One task's examples: English (source) train and dev, and one evaluation set per target."""

    kind: str
    source: str
    train: list
    source_dev: list
    targets: dict[str, list] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return LABELS[self.kind]


# ----------------------------------------------------------------------------- readers
def read_tagged_sentences(path: str | os.PathLike) -> list[TaggedSentence]:
    """Sentences of a word table (R/words/<treebank>.tsv), words in `word_id` order."""
    table = read_word_table(path)
    missing = {"sentence_id", "word_id", "form", "upos"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: word table lacks column(s) {', '.join(sorted(missing))}")
    forms, upos = table["form"].fillna("").to_numpy(), table["upos"].to_numpy()
    sentences = []
    for _, rows in sentence_rows(table, path):
        # An empty UPOS (a word the table could not tag) and a multiword token's joined tags
        # ("ADP+DET": one surface token, several syntactic words) stay in the input but are not scored.
        tags = [tag if isinstance(tag, str) and tag and "+" not in tag else None for tag in upos[rows]]
        sentences.append((forms[rows].tolist(), tags))
    _check_tags(sentences, path)
    return sentences


def read_xtreme_pos(path: str | os.PathLike) -> list[TaggedSentence]:
    """UD-POS as XTREME's preprocessing writes its train and dev files: `word<TAB>UPOS` per line, a blank
    line between sentences.

    XTREME's test files hold words only (the benchmark keeps their tags hidden): they are rejected, as a
    target needs tags to be scored.
    """
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str | None] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            parts = line.split("\t")
            if len(parts) == 1:
                raise ValueError(
                    f"{path}:{number}: a word without a tag ({line!r}); expected 'word<TAB>UPOS' lines. "
                    "XTREME's test-<lang>.tsv files carry no tags: give its labelled dev-<lang>.tsv as the "
                    "target file, or use format: hub (the datasets copy has tagged test splits)"
                )
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: expected 'word<TAB>UPOS', got {line!r}")
            words.append(parts[0])
            tags.append(parts[1])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    _check_tags(sentences, path)
    return sentences


def read_xnli_tsv(path: str | os.PathLike) -> list[SentencePair]:
    """XNLI as XTREME's preprocessing writes it: `premise<TAB>hypothesis<TAB>label` rows written by
    Python's csv module (a field holding a quote is quoted, its quotes doubled), label one of
    entailment/neutral/contradiction."""
    pairs = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if not row:
                continue
            if len(row) != 3 or row[2] not in NLI_LABELS:
                raise ValueError(
                    f"{path}:{reader.line_num}: expected 'premise<TAB>hypothesis<TAB>label' (tab-separated, "
                    f"csv-quoted where a field holds a quote) with label one of {NLI_LABELS}, got "
                    f"{chr(9).join(row)[:120]!r}"
                )
            pairs.append((row[0], row[1], row[2]))
    if not pairs:
        raise ValueError(f"{path}: no sentence pairs")
    return pairs


def _check_tags(sentences: list[TaggedSentence], path: Any) -> None:
    unknown = {tag for _, tags in sentences for tag in tags if tag is not None and tag not in UPOS}
    if unknown:
        raise ValueError(f"{path}: tags {sorted(unknown)} are not Universal POS tags {UPOS}")


def _read_hub(kind: str, language: str, split: str, cache_dir: str | None) -> list:
    """The `datasets` hub copies (XNLI; XTREME's UD-POS): from the cache that rule prefetch_dataset
    filled, or the network where there is one."""
    from xlprobe.hubdata import load_split

    rows = load_split(*hub_dataset(kind, language), split, cache_dir)
    if kind == "xnli":
        names = rows.features["label"].names
        return [(r["premise"], r["hypothesis"], names[r["label"]]) for r in rows]
    names = rows.features["pos_tags"].feature.names
    return [(list(r["tokens"]), [names[t] for t in r["pos_tags"]]) for r in rows]


# ----------------------------------------------------------------------------- one task
def load_task(
    task: dict[str, Any],
    data_files: Sequence[str | os.PathLike] = (),
    seed: int = 0,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    cache_dir: str | None = None,
) -> TaskData:
    """Gather a task's examples as its config entry (`transfer.tasks.<name>`) describes.

    Formats: `conllu` reads the word tables in `data_files` (named `<treebank>.tsv`); `xtreme` and
    `tsv` read `task["files"]` (keys `train`, optional `dev`, and each target); `hub` uses `datasets`.
    Without a source dev set, a seeded 10% of the source sentences is held out for it. Targets are
    evaluated whole unless `max_eval_examples` caps them (a seeded sample).
    """
    name = task.get("name", task["type"])
    kind, fmt, source = task["type"], task_format(task, name), task["source"]
    targets = list(task.get("targets", []))
    key = f"transfer.tasks.{name}"

    dev = None
    if fmt == "conllu":
        tables = {Path(p).name.removesuffix(".tsv"): p for p in data_files}
        absent = [tb for tb in [source, *targets] if tb not in tables]
        if absent:
            raise ValueError(f"{key}: no word table for {absent} among {sorted(map(str, data_files))}")
        train = read_tagged_sentences(tables[source])
        evaluation = {tb: read_tagged_sentences(tables[tb]) for tb in targets}
    elif fmt == "hub":
        splits = hub_task_splits(task)
        train = _read_hub(kind, source, splits["train"], cache_dir)
        dev = _read_hub(kind, source, splits["dev"], cache_dir)
        evaluation = {lang: _read_hub(kind, lang, splits["targets"], cache_dir) for lang in targets}
    else:
        files = task.get("files") or {}
        absent = [k for k in ["train", *targets] if k not in files]
        if absent:
            raise ValueError(f"{key}.files: no file for {absent} (keys: train, dev, and each target)")
        reader = read_xtreme_pos if kind == "udpos" else read_xnli_tsv
        train = reader(files["train"])
        dev = reader(files["dev"]) if "dev" in files else None
        evaluation = {lang: reader(files[lang]) for lang in targets}

    rng = random.Random(seed)
    if dev is None:
        order = list(range(len(train)))
        rng.shuffle(order)
        n_dev = max(1, round(SOURCE_DEV_SHARE * len(train)))
        dev = [train[i] for i in sorted(order[:n_dev])]
        train = [train[i] for i in sorted(order[n_dev:])]
    train = _sample(train, max_train_examples, rng)
    dev = _sample(dev, max_eval_examples, rng)
    evaluation = {lang: _sample(rows, max_eval_examples, rng) for lang, rows in evaluation.items()}
    if not train:
        raise ValueError(f"{key}: no training examples for source '{source}'")
    log.info(
        "%s: %d train, %d source dev, targets %s", name, len(train), len(dev),
        {lang: len(rows) for lang, rows in evaluation.items()},
    )
    return TaskData(kind=kind, source=source, train=train, source_dev=dev, targets=evaluation)


def _sample(rows: list, cap: int | None, rng: random.Random) -> list:
    """A seeded sample of at most `cap` rows, in their original order."""
    if cap is None or len(rows) <= cap:
        return rows
    return [rows[i] for i in sorted(rng.sample(range(len(rows)), cap))]
