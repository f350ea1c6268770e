"""Reading UD treebanks (CoNLL-U) with `conllu`: sentences of surface tokens, each with its words.

Comments are read for `sent_id`; empty nodes (`8.1`) are dropped; a multiword token (`2-3 du`) is kept
as one surface token that carries its words (`de`, `le`). A malformed line stops reading with an error
naming the file and line number.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from conllu.exceptions import ParseException
from conllu.parser import DEFAULT_FIELDS, parse_comment_line, parse_id_value, parse_int_value

_N_COLUMNS = len(DEFAULT_FIELDS)


class CoNLLUError(ValueError):
    """A malformed CoNLL-U line; the message starts with `file:line:`."""


def _parse_id(value: str):
    # Plain word IDs take the fast path; ranges (2-3), empty nodes (8.1) and errors go to conllu.
    if value.isascii() and value.isdigit() and value[0] != "0":
        return int(value)
    return parse_id_value(value)


def _check_head(value: str) -> None:
    if not (value.isascii() and value.isdigit()):
        parse_int_value(value)


def _columns(line: str) -> list[str]:
    columns = line.split("\t")
    if len(columns) != _N_COLUMNS:
        raise ParseException(f"expected {_N_COLUMNS} tab-separated columns, found {len(columns)}")
    return columns


@dataclass(frozen=True, slots=True)
class Word:
    """One syntactic word (a CoNLL-U line with an integer ID)."""

    id: int
    form: str
    lemma: str
    upos: str
    feats: str  # raw FEATS, `_` when none


@dataclass(frozen=True, slots=True)
class Token:
    """One surface token: a single word, or a multiword token with the words it stands for."""

    id: str  # "3", or "2-3" for a multiword token
    form: str
    words: tuple[Word, ...]

    @property
    def is_multiword(self) -> bool:
        return len(self.words) > 1 or "-" in self.id


@dataclass(frozen=True, slots=True)
class ConlluSentence:
    path: str
    line: int  # line number of the sentence's first line
    sent_id: str | None
    tokens: tuple[Token, ...]


def check_token_line(line: str, path: str | os.PathLike, number: int) -> list[str]:
    """The 10 columns of a token line; CoNLLUError naming `path:number` if it is malformed."""
    try:
        columns = _columns(line)
        _parse_id(columns[0])
    except ParseException as error:
        raise CoNLLUError(f"{path}:{number}: malformed CoNLL-U line ({error}): {line!r}") from None
    return columns


def read_conllu(path: str | os.PathLike) -> Iterator[ConlluSentence]:
    """The sentences of one CoNLL-U file, in file order."""
    path = str(path)
    # Bytes decoded line by line: a byte that is not UTF-8 is reported with its line.
    with open(path, "rb") as handle:
        block: list[tuple[int, str]] = []
        number = 0
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise CoNLLUError(
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}): "
                    f"{raw.rstrip()!r}"
                ) from None
            if line.strip():
                block.append((number, line))
            elif block:
                yield _sentence(path, block)
                block = []
        if block:
            yield _sentence(path, block)


def read_treebank(paths: Iterable[str | os.PathLike]) -> Iterator[ConlluSentence]:
    """The sentences of a treebank's files pooled, files in sorted name order (not listing order)."""
    for path in sorted(paths, key=lambda p: (Path(p).name, str(p))):
        yield from read_conllu(path)


def _sentence(path: str, block: list[tuple[int, str]]) -> ConlluSentence:
    sent_id = None
    words: dict[int, Word] = {}
    ranges: list[tuple[int, int, int, str]] = []  # (first, last, line number, form)
    order: list[tuple[str, int]] = []  # ("word", id) or ("range", index) in file order
    for number, line in block:
        if line.startswith("#"):
            for key, value in parse_comment_line(line):
                if key == "sent_id":
                    sent_id = value
            continue
        try:
            columns = _columns(line)
            token_id = _parse_id(columns[0])
            _check_head(columns[6])
        except ParseException as error:
            raise CoNLLUError(f"{path}:{number}: malformed CoNLL-U line ({error}): {line!r}") from None
        if isinstance(token_id, int):
            if token_id != len(words) + 1:
                raise CoNLLUError(
                    f"{path}:{number}: word ID {token_id} out of sequence (expected {len(words) + 1})"
                )
            words[token_id] = Word(token_id, columns[1], columns[2], columns[3], columns[5])
            order.append(("word", token_id))
        elif token_id is not None and token_id[1] == "-":
            ranges.append((token_id[0], token_id[2], number, columns[1]))
            order.append(("range", len(ranges) - 1))
        elif token_id is None:
            raise CoNLLUError(f"{path}:{number}: malformed CoNLL-U line (empty ID): {line!r}")
        # else: an empty node (ID like 8.1): dropped

    covered: set[int] = set()
    tokens: list[Token] = []
    for kind, key in order:
        if kind == "range":
            first, last, number, form = ranges[key]
            missing = [i for i in range(first, last + 1) if i not in words]
            if missing or first in covered:
                raise CoNLLUError(
                    f"{path}:{number}: multiword token {first}-{last} covers missing or shared words"
                )
            covered.update(range(first, last + 1))
            tokens.append(Token(f"{first}-{last}", form, tuple(words[i] for i in range(first, last + 1))))
        elif key not in covered:
            word = words[key]
            tokens.append(Token(str(key), word.form, (word,)))
    if not tokens:
        raise CoNLLUError(f"{path}:{block[0][0]}: sentence without words")
    return ConlluSentence(path, block[0][0], sent_id, tuple(tokens))
