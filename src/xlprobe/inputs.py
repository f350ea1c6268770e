"""What a stage reads, decided once: the workflow's DAG (rules/common.smk), the config checks and the
library stages all call these functions, so that a job is given the files it will open.

Light on purpose (no torch, no pandas): Snakemake imports it at every start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# The formats each transfer task type can be read from, its default first.
TASK_FORMATS = {"udpos": ("conllu", "xtreme", "hub"), "xnli": ("tsv", "hub")}


def task_format(task: Mapping[str, Any], name: str | None = None) -> str:
    """A transfer task's format: the one it names, else its type's default (udpos: the word tables)."""
    key = f"transfer.tasks.{name or task.get('name', task.get('type'))}"
    kind = task.get("type")
    if kind not in TASK_FORMATS:
        raise ValueError(f"{key}.type: unknown task type '{kind}' (one of {sorted(TASK_FORMATS)})")
    fmt = task.get("format", TASK_FORMATS[kind][0])
    if fmt not in TASK_FORMATS[kind]:
        raise ValueError(f"{key}.format: '{fmt}' does not apply to {kind} (one of {TASK_FORMATS[kind]})")
    return fmt


def task_treebanks(task: Mapping[str, Any], name: str | None = None) -> list[str]:
    """The treebanks whose word tables a task reads: source then targets (none unless conllu)."""
    if task_format(task, name) != "conllu":
        return []
    return [task["source"], *task.get("targets", [])]


def task_data_files(
    task: Mapping[str, Any], words_path: Callable[[str], str], name: str | None = None
) -> list[str]:
    """The local files a transfer task reads: word tables (`words_path(treebank)`), its `files`, or
    none (hub)."""
    fmt = task_format(task, name)
    if fmt == "conllu":
        return [words_path(treebank) for treebank in task_treebanks(task, name)]
    if fmt == "hub":
        return []
    return list((task.get("files") or {}).values())


def demo_parallel_files(demo_dir: str | Path, languages: list[str]) -> dict[str, str]:
    """The demo generator's aligned files, one per language."""
    return {lang: str(Path(demo_dir, "parallel", f"{lang}.txt")) for lang in languages}


def similarity_files(settings: Mapping[str, Any], demo_dir: str | Path) -> dict[str, Any]:
    """Where the parallel text of `similarity:` comes from: its `files`; else nothing local (the pairs
    come from the `hub` corpus); else the demo's aligned files of the pairs' languages."""
    if settings.get("files"):
        return dict(settings["files"])
    if settings.get("hub"):
        return {}
    return demo_parallel_files(demo_dir, sorted({lang for pair in settings.get("pairs", []) for lang in pair}))


def similarity_data_files(settings: Mapping[str, Any], demo_dir: str | Path) -> list[str]:
    """The files of `similarity_files`, each once (a value is one file or a [source, target] pair)."""
    values = similarity_files(settings, demo_dir).values()
    return sorted({path for value in values for path in ([value] if isinstance(value, str) else value)})


# ----------------------------------------------------------------------------- hub datasets
# XTREME's UD-POS configs name languages in English.
UDPOS_HUB_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch", "en": "English",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German", "el": "Greek", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "zh": "Chinese", "mr": "Marathi", "fa": "Persian",
    "pt": "Portuguese", "ru": "Russian", "es": "Spanish", "tl": "Tagalog", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba",
}
XNLI_HUB, XTREME_HUB = "facebook/xnli", "google/xtreme"


def hub_dataset(kind: str, language: str) -> tuple[str, str]:
    """(repo, config name) of a task's language on the hub: XNLI's per-language configs, XTREME's
    `udpos.<Language>`."""
    if kind == "xnli":
        return XNLI_HUB, language
    if language not in UDPOS_HUB_NAMES:
        raise ValueError(f"UD-POS language '{language}' has no XTREME hub copy")
    return XTREME_HUB, f"udpos.{UDPOS_HUB_NAMES[language]}"


def hub_task_splits(task: Mapping[str, Any]) -> dict[str, str]:
    """The hub split a `format: hub` task reads for each role: the source's train and dev, the targets'."""
    return {"train": "train", "dev": "validation", "targets": task["eval_split"]}


def task_hub_datasets(task: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """The (repo, config) -> splits that a `format: hub` task reads (none for other formats)."""
    if task.get("format") != "hub":
        return {}
    roles = hub_task_splits(task)
    needed: dict[tuple[str, str], set[str]] = {}
    for language in [task["source"], *task.get("targets", [])]:
        splits = {roles["train"], roles["dev"]} if language == task["source"] else set()
        if language in task.get("targets", []):
            splits.add(roles["targets"])
        needed.setdefault(hub_dataset(task["type"], language), set()).update(splits)
    return needed


def hub_config(source: str, target: str) -> str:
    """A translation corpus's config for a pair: the sorted codes, as OPUS-100 names them ("ar-en")."""
    return "-".join(sorted([source, target]))


def pair_from_hub(files: dict[str, Any], source: str, target: str, hub: str | None) -> bool:
    """Whether a pair's text comes from the hub: it has a corpus, and local files take precedence."""
    return bool(hub) and f"{source}-{target}" not in files and not (source in files and target in files)


def hub_pairs(similarity: dict[str, Any]) -> list[tuple[str, str]]:
    """(repo, config) of every configured pair read from the hub."""
    files, hub = similarity.get("files") or {}, similarity.get("hub")
    return sorted({(hub, hub_config(s, t)) for s, t in similarity.get("pairs", []) if pair_from_hub(files, s, t, hub)})
