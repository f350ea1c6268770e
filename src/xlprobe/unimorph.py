"""UD FEATS -> UniMorph tags (the converter the paper used) -> UniMorph attributes (the probe's parser).

The conversion follows McCarthy et al. 2018 (unimorph/ud-compatibility): UPOS and every FEATS item go
through the generic table, multi-valued features become a disjunction `{A/B}`, possessor features a
`PSS<person><number>` tag, Basque-style argument agreement `ARG<ER|AB|DA><person><number>` tags, then the
language's rules edit the tag set. The tables and rules are data in `xlprobe/data/`.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from xlprobe.io import atomic_path

log = logging.getLogger(__name__)

_LAYER = re.compile(r"\[(.*?)\]")
# Layers the converter turns into argument-marking tags, and their UniMorph prefixes.
_ARGUMENT_LAYERS = {"erg": "ER", "abs": "AB", "dat": "DA"}
_IGNORED_LAYERS = {"psed", "gram"}
_NUMBER_LETTER = {"Sing": "S", "Plur": "P", "Dual": "D"}


def _data_lines(name: str) -> list[str]:
    text = resources.files("xlprobe").joinpath("data", name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@functools.cache
def feature_table() -> dict[str, tuple[str, ...]]:
    """`Feature=Value` (or a bare UPOS) -> the UniMorph tags it becomes (empty: dropped)."""
    table = {}
    for row in csv.DictReader(_data_lines("ud_to_unimorph.tsv"), delimiter="\t"):
        key = row["value"] if row["feature"] == "UPOS" else f"{row['feature']}={row['value']}"
        table[key] = tuple(tag for tag in row["unimorph"].split(";") if tag)
    return table


@functools.cache
def schema() -> dict[str, str]:
    """UniMorph 3.0 tag -> its dimension (attribute)."""
    rows = csv.DictReader(_data_lines("unimorph_schema.tsv"), delimiter="\t")
    return {row["tag"]: row["dimension"] for row in rows}


@functools.cache
def dimensions() -> tuple[str, ...]:
    """The 24 UniMorph 3.0 dimensions in the schema's canonical order."""
    return tuple(dict.fromkeys(schema().values()))


@functools.cache
def language_rules() -> dict[str, list[dict]]:
    text = resources.files("xlprobe").joinpath("data", "language_rules.yaml").read_text(encoding="utf-8")
    rules = yaml.safe_load(text)
    for language, language_rules_ in rules.items():
        for rule in language_rules_:
            _check_rule(rule, f"language_rules.yaml: {language}")
    return rules


_CONDITIONS = {"has", "has_and_more", "lacks", "is", "form_ends_with", "any"}
_ACTIONS = {"remove", "add", "set"}


def _check_rule(rule: dict, where: str) -> None:
    if not isinstance(rule, dict) or "then" not in rule or set(rule) - {"if", "then"}:
        raise ValueError(f"{where}: a rule is {{if: ..., then: [...]}}, got {rule!r}")
    _check_condition(rule.get("if", {}), where)
    for action in rule["then"]:
        if "then" in action:
            _check_rule(action, where)
        elif len(action) != 1 or not set(action) <= _ACTIONS:
            raise ValueError(f"{where}: unknown action {action!r} (known: {sorted(_ACTIONS)})")


def _check_condition(condition: dict, where: str) -> None:
    unknown = set(condition) - _CONDITIONS
    if unknown:
        raise ValueError(f"{where}: unknown condition {sorted(unknown)} (known: {sorted(_CONDITIONS)})")
    for sub in condition.get("any", []):
        _check_condition(sub, where)


def _holds(condition: dict, tags: set[str], form: str) -> bool:
    for kind, arg in condition.items():
        if kind == "has" and not tags.issuperset(arg):
            return False
        if kind == "has_and_more" and not (tags.issuperset(arg) and len(tags) > len(set(arg))):
            return False
        if kind == "lacks" and not tags.isdisjoint(arg):
            return False
        if kind == "is" and tags != set(arg):
            return False
        if kind == "form_ends_with" and not form.endswith(tuple(arg)):
            return False
        if kind == "any" and not any(_holds(sub, tags, form) for sub in arg):
            return False
    return True


def _apply(rule: dict, tags: set[str], form: str) -> set[str]:
    if not _holds(rule.get("if", {}), tags, form):
        return tags
    for action in rule["then"]:
        if "then" in action:
            tags = _apply(action, tags, form)
        elif "remove" in action:
            tags = tags - set(action["remove"])
        elif "add" in action:
            tags = tags | set(action["add"])
        else:
            tags = set(action["set"])
    return tags


def _possession_tag(items: list[str]) -> str | None:
    """Possessor person/number, e.g. `Person[psor]=3|Number[psor]=Plur` -> PSS3P."""
    psor = {item.split("=", 1)[0]: item.split("=", 1)[1] for item in items if "[psor]" in item}
    if not psor:
        return None
    if any("None" in value for value in psor.values()):
        return "PSSD"
    person = psor.get("Person[psor]", "")
    number = _NUMBER_LETTER.get(psor.get("Number[psor]", ""), "")
    return f"PSS{person if person in ('1', '2', '3') else ''}{number}"


def _argument_tags(items: list[str]) -> list[str]:
    """Agreement with ergative/absolutive/dative arguments, e.g. `Person[erg]=3|Number[erg]=Sing` -> ARGER3S."""
    by_layer: dict[str, dict[str, str]] = {}
    for item in items:
        match = _LAYER.search(item)
        if match and match.group(1) != "psor" and "=" in item:
            name, value = item.split("=", 1)
            by_layer.setdefault(match.group(1), {})[name.split("[", 1)[0]] = value
    tags = []
    for layer, features in sorted(by_layer.items()):
        if layer in _IGNORED_LAYERS or layer not in _ARGUMENT_LAYERS:
            continue  # other layers have no UniMorph counterpart
        person = features.get("Person", "")
        number = _NUMBER_LETTER.get(features.get("Number", ""), "")
        tags.append(f"ARG{_ARGUMENT_LAYERS[layer]}{person if person in ('1', '2', '3') else ''}{number}")
    return tags


def generic_tags(upos: str, feats: str) -> list[str]:
    """UPOS and FEATS (`A=B|C=D,E`, or `_`) through the generic table, layered and multi-valued features."""
    items = [] if feats in ("_", "") else list(dict.fromkeys(feats.split("|")))
    table = feature_table()
    tags = list(table.get(upos, ()))
    possession = _possession_tag(items)
    if possession:
        tags.append(possession)
    tags.extend(_argument_tags(items))
    for item in items:
        if "[" in item or "=" not in item:
            continue
        name, values = item.split("=", 1)
        if "," not in values:
            tags.extend(table.get(item, ()))
            continue
        # A multi-valued feature becomes one disjunction of its mapped values.
        mapped = [
            ";".join(table[f"{name}={value}"]) for value in values.split(",") if table.get(f"{name}={value}")
        ]
        if mapped:
            tags.append("{" + "/".join(mapped) + "}")
    return tags


class Converter:
    """UD -> UniMorph for one language (ISO 639-1 code; an unknown code gets the generic table only)."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.rules = language_rules().get(language, [])
        if language not in language_rules():
            log.info("no UniMorph language rules for %r: generic table only", language)
        # Only rules that look at the word form make the form part of the cache key.
        self._uses_form = "form_ends_with" in repr(self.rules)
        self._cache: dict[tuple[str, str, str], tuple[str, ...]] = {}

    def tags(self, upos: str, feats: str, form: str = "") -> tuple[str, ...]:
        """The word's UniMorph tags, sorted (empty when nothing maps)."""
        key = (upos, feats, form if self._uses_form else "")
        tags = self._cache.get(key)
        if tags is None:
            tags = self._cache[key] = self._convert(*key)
        return tags

    def _convert(self, upos: str, feats: str, form: str) -> tuple[str, ...]:
        tags = generic_tags(upos, feats)
        if self.rules:
            tag_set = set(tags)
            for rule in self.rules:
                tag_set = _apply(rule, tag_set, form)
            tags = list(tag_set)
        return tuple(sorted(tags))


def tags_to_attributes(tags: Iterable[str]) -> dict[str, str]:
    """UniMorph tags -> {dimension: value}, with the parsing rules of the probing code.

    Disjunctions (`/`) are dropped; `A+B` is one value of the conjuncts' shared dimension, conjuncts
    sorted; `ARG*` is Argument Marking; `NDEF` is Definiteness INDF; `PSS*` is Possession; `LGSPEC*` and
    tags outside the schema are dropped. Two tags of one dimension (English V with V.PTCP): the last
    in sorted order wins, so the more specific V.PTCP / V.MSDR / V.CVB.
    """
    known = schema()
    attributes: dict[str, str] = {}
    for tag in sorted(tags):
        if "/" in tag or "LGSPEC" in tag:
            continue
        if tag == "{CMPR}":
            attributes["Comparison"] = "CMPR"
        elif tag == "PST+PRF":
            # conjuncts of two dimensions: the probing code files the pluperfect under Tense
            attributes["Tense"] = tag
        elif tag.startswith("ARG"):
            if tag[3:] in known:
                attributes[known[tag[3:]]] = tag[3:]
        elif tag == "NDEF":
            attributes["Definiteness"] = "INDF"
        elif "+" in tag:
            parts = tag.split("+")
            dims = {known.get(part) for part in parts}
            if len(dims) == 1 and None not in dims:
                attributes[dims.pop()] = "+".join(sorted(parts))
        elif "PSS" in tag:
            attributes["Possession"] = tag
        elif tag in known:
            attributes[known[tag]] = tag
    return attributes


def convert_file(input: str | os.PathLike, output: str | os.PathLike, language: str) -> dict[str, Any]:
    """Write `input` with UniMorph tags (`;`-joined, sorted; `_` if none) in FEATS, other columns as they were.

    Word lines, empty nodes and multiword-token lines are all converted (a multiword token's `_`/`_`
    gives `_`, as in the reference converter). Returns counts.
    """
    from xlprobe.treebank import check_token_line

    converter = Converter(language)
    counts = {"tokens": 0, "tagged": 0}
    with (
        open(input, encoding="utf-8") as source,
        atomic_path(output) as tmp,
        open(tmp, "w", encoding="utf-8") as sink,
    ):
        for number, line in enumerate(source, start=1):
            stripped = line.rstrip("\r\n")
            if not stripped.strip() or stripped.startswith("#"):
                sink.write(stripped + "\n")
                continue
            columns = check_token_line(stripped, input, number)
            tags = converter.tags(columns[3], columns[5], columns[1])
            columns[5] = ";".join(tags) if tags else "_"
            counts["tokens"] += 1
            counts["tagged"] += bool(tags)
            sink.write("\t".join(columns) + "\n")
    log.info("%s -> %s: %d tokens, %d with tags", input, output, counts["tokens"], counts["tagged"])
    return counts


def agreement(ours: str | os.PathLike, reference: str | os.PathLike) -> tuple[int, int, list[tuple]]:
    """Token-by-token FEATS agreement of two converted files: (agreeing, tokens, differences).

    Tags are compared as sets (`_` = none). Each difference is (line, form, ours, reference).
    """
    agree, total, differences = 0, 0, []
    with open(ours, encoding="utf-8") as a, open(reference, encoding="utf-8") as b:
        for number, (line_a, line_b) in enumerate(zip(a, b, strict=True), start=1):
            if not line_a.strip() or line_a.startswith("#"):
                continue
            cols_a, cols_b = line_a.rstrip("\n").split("\t"), line_b.rstrip("\n").split("\t")
            if cols_a[0] != cols_b[0]:
                raise ValueError(f"{ours}:{number}: token {cols_a[0]} faces {cols_b[0]} in {reference}")
            total += 1
            if _tag_set(cols_a[5]) == _tag_set(cols_b[5]):
                agree += 1
            else:
                differences.append((number, cols_a[1], cols_a[5], cols_b[5]))
    return agree, total, differences


def _tag_set(feats: str) -> frozenset[str]:
    return frozenset(tag for tag in feats.split(";") if tag not in ("", "_"))


def reference_path(reference_root: Path, folder: str) -> Path | None:
    """The one converted file of a treebank folder in a reference tree (None if absent)."""
    files = sorted(Path(reference_root, folder).glob("*-um-*.conllu"))
    return files[0] if files else None
