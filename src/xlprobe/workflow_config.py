"""Checks of a workflow configuration that JSON Schema cannot express.

Each error names the config key at fault, so that a bad config stops before any job runs.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from xlprobe.discovery import revision_regex
from xlprobe.inputs import task_treebanks

# The repository's schema (the package is used from its source tree: src/xlprobe -> config/).
SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


class ConfigError(ValueError):
    pass


def schema_errors(config: dict[str, Any], schema_path: str | Path) -> list[str]:
    """Every JSON Schema violation, each as 'dotted.key: what is wrong'."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        if error.validator == "additionalProperties":
            known = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - set(known))
            for name in unknown:
                where = f"{key}.{name}" if error.absolute_path else name
                errors.append(f"{where}: unknown key (allowed: {', '.join(known)})")
            if unknown:
                continue
        errors.append(f"{key}: {error.message}")
    return errors


def with_defaults(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """The config with every `default:` of the schema filled in where the key is absent, in place.

    A default applies inside an object that is present (or itself has a default): a config without
    `similarity:` stays without one. The schema is the only place a default is written.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    _fill_defaults(config, schema, schema)
    return config


@functools.cache
def _section_defaults(section: str, schema_path: str) -> dict[str, Any]:
    return with_defaults({section: {}}, schema_path)[section]


def schema_defaults(section: str, schema_path: str | Path = SCHEMA) -> dict[str, Any]:
    """The defaults of one top-level section (e.g. `probe`), for code run outside the workflow."""
    return copy.deepcopy(_section_defaults(section, str(schema_path)))


def _fill_defaults(value: Any, node: dict[str, Any], root: dict[str, Any]) -> None:
    if "$ref" in node:
        node = _resolve_ref(node["$ref"], root)
    if not isinstance(value, dict):
        return
    for name, sub in (node.get("properties") or {}).items():
        if "$ref" in sub:  # a key's own `default:` beside its $ref wins over the referenced one's
            sub = {**_resolve_ref(sub["$ref"], root), **{k: v for k, v in sub.items() if k != "$ref"}}
        if name not in value and "default" in sub:
            value[name] = copy.deepcopy(sub["default"])
        if name in value:
            _fill_defaults(value[name], sub, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for name in set(value) - set(node.get("properties") or {}):
            _fill_defaults(value[name], extra, root)


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def check_config(config: dict[str, Any], workdir: str | Path = ".", schema_path: str | Path | None = None) -> None:
    """Stop with every problem of the config, each naming its key, before any job is scheduled."""
    if schema_path is not None:
        errors = schema_errors(config, schema_path)
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    errors: list[str] = []
    treebanks = config["treebanks"]
    demo = config.get("demo")

    for name, model in config["models"].items():
        key = f"models.{name}"
        source = model["source"]
        if source == "hub" and "revision" in model:
            try:
                revision_regex(model["revision"])
            except ValueError as error:
                errors.append(f"{key}.revision: {error}")
        if isinstance(model["steps"], dict):
            if source != "hub":
                errors.append(f"{key}.steps: discovery needs source 'hub' (list the steps of a {source} model)")
            elif model["steps"].get("include_final") and "final" not in model:
                errors.append(f"{key}.steps.include_final: {key}.final is not set")
            continue
        if source == "hub":
            for field in ("repo", "revision"):
                if field not in model:
                    errors.append(f"{key}.{field}: required for source 'hub'")
        elif source == "local" and "path" not in model:
            errors.append(f"{key}.path: required for source 'local'")
        elif source == "demo":
            if demo is None:
                errors.append(f"{key}.source: 'demo' needs a top-level 'demo' section")
            if "pretrain" not in model:
                errors.append(f"{key}.pretrain: required for source 'demo'")
            else:
                saved = set(model["pretrain"]["save_steps"])
                missing = [s for s in model["steps"] if str(s) == "final" or int(s) not in saved]
                if missing:
                    errors.append(
                        f"{key}.steps: {missing} are not in {key}.pretrain.save_steps {sorted(saved)}"
                    )
                if max(saved) > model["pretrain"]["train_steps"]:
                    errors.append(f"{key}.pretrain.save_steps: beyond train_steps")
        if "final" in [str(s) for s in model["steps"]] and source != "demo" and "final" not in model:
            errors.append(f"{key}.steps: 'final' listed but {key}.final is not set")

    for section, spec in (config.get("transfer", {}).get("tasks") or {}).items():
        key = f"transfer.tasks.{section}"
        try:
            needed = task_treebanks(spec, section)
        except ValueError as error:
            errors.append(str(error))
            continue
        for tb in needed:
            if tb not in treebanks:
                errors.append(f"{key}: treebank '{tb}' is not in treebanks ({', '.join(treebanks)})")

    if demo is not None:
        from xlprobe.demo.synthetic import demo_treebank_folder

        for tb, spec in treebanks.items():
            if spec["language"] not in demo["languages"]:
                errors.append(f"treebanks.{tb}.language: '{spec['language']}' is not a demo language")
            elif spec["folder"] != demo_treebank_folder(spec["language"]):
                errors.append(
                    f"treebanks.{tb}.folder: the demo writes language '{spec['language']}' to "
                    f"'{demo_treebank_folder(spec['language'])}', not '{spec['folder']}'"
                )
    else:
        ud_root = Path(workdir, config["ud_root"])
        if ud_root.is_dir():
            available = sorted(p.name for p in ud_root.glob("UD_*") if p.is_dir())
            for tb, spec in treebanks.items():
                if not any(Path(ud_root, spec["folder"]).glob("*.conllu")):
                    errors.append(
                        f"treebanks.{tb}.folder: no {spec['folder']}/*.conllu under ud_root "
                        f"'{config['ud_root']}' (available: {', '.join(available) or 'none'})"
                    )

    errors += shape_errors(config, workdir)
    if demo is None:
        errors += language_errors(config)

    measured = (config.get("similarity") or {}).get("layers")
    if config.get("similarity") and measured:
        probed = [layer for layer in config["activations"]["layers"] if layer not in measured]
        if probed:
            errors.append(
                f"similarity.layers: {sorted(measured)} lack the probed layer(s) {probed} "
                "(activations.layers): the alignment's similarity is read at the probed layer"
            )

    if config.get("similarity") and demo is not None:
        for pair in config["similarity"].get("pairs", []):
            for lang in pair:
                if lang not in demo["languages"]:
                    errors.append(f"similarity.pairs: '{lang}' is not a demo language")

    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))


def known_shape(name: str, model: dict[str, Any], workdir: str | Path = ".",
                demo: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A model's {hidden, blocks, mlp, source} where known before any job runs, without the network: a
    demo model's spec, a local checkpoint's or a cached one's config.json (its download marker names
    the cache folder); None if unknown."""
    from xlprobe.model_shape import demo_model_config, shape_of

    if model["source"] == "demo":
        shape = shape_of(demo_model_config(model, demo))
        return {"hidden": shape.hidden, "blocks": shape.blocks, "mlp": shape.mlp_width,
                "source": f"models.{name}.pretrain"}
    folders = []
    if model["source"] == "local":
        folders.append(Path(workdir, str(model["path"]).replace("{step}", str(_first_step(model)))))
    for marker in sorted(Path(workdir, "resources", "checkpoints", name).glob("*.json")):
        try:
            folders.append(Path(json.loads(marker.read_text())["path"]))
        except (OSError, ValueError, KeyError):
            continue  # an unreadable marker: its download job writes it again
    for folder in folders:
        try:
            shape = shape_of(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError):
            continue
        return {"hidden": shape.hidden, "blocks": shape.blocks, "mlp": shape.mlp_width,
                "source": str(folder / "config.json")}
    return None


def _first_step(model: dict[str, Any]) -> Any:
    steps = model["steps"]
    return steps[0] if isinstance(steps, list) and steps else ""


def shape_errors(config: dict[str, Any], workdir: str | Path = ".") -> list[str]:
    """probe.k at or beyond a model's dumped width (every neuron picked: overlap = chance), and layers
    beyond its depth, for each model whose shape is known before the run."""
    activations = config.get("activations") or {}
    site = activations.get("site", "residual")
    k = (config.get("probe") or {}).get("k")
    errors = []
    for name, model in config["models"].items():
        shape = known_shape(name, model, workdir, config.get("demo"))
        if shape is None:
            continue
        width = shape["mlp"] if site == "mlp" else shape["hidden"]
        if k is not None and int(k) >= width:
            errors.append(f"probe.k: {k} is not below the {width} neurons of models.{name}'s {site} activations "
                          f"(from {shape['source']}): the top-k would be every neuron")
        if site == "mlp":
            top, meaning = shape["blocks"], "activations.site mlp: layer L = the MLP neurons of block L"
        else:
            top, meaning = shape["blocks"] + 1, "layer 1 = the embedding output, layer L = block L-1's output"
        beyond = [layer for layer in activations.get("layers", []) if not 1 <= int(layer) <= top]
        if beyond:
            errors.append(f"activations.layers: {beyond} beyond the {shape['blocks']} blocks of models.{name} "
                          f"(layers 1..{top}; {meaning}; depth from {shape['source']})")
    return errors


def language_errors(config: dict[str, Any]) -> list[str]:
    """Treebank languages the converter has no rules for and the config did not list in
    generic_languages: a mistyped code (fe for fr) would build other word tables without a word."""
    from xlprobe.unimorph import language_rules

    known = language_rules()
    generic = set(config.get("generic_languages") or [])
    errors = []
    for tb, spec in config["treebanks"].items():
        code = spec["language"]
        if code not in known and code not in generic:
            errors.append(
                f"treebanks.{tb}.language: '{code}' has no UniMorph rules (xlprobe/data/language_rules.yaml: "
                f"{', '.join(sorted(known))}); if that is meant, list it in generic_languages to convert it "
                "with the generic table alone"
            )
    return errors
