"""`xlprobe plan`: before anything runs, what a config's grid will cost.

Job counts per rule follow the workflow's wildcards (rules/*.smk): one dump per model x step x
treebank, one probe per model x step x layer x treebank, one transfer per model x step x task, ...
Treebanks whose word table shows nothing to probe drop out once the tables exist; before that every
treebank counts (as in a dry run). Hours are estimates from the unit costs (xlprobe.costs), without
the safety factor the rules' requests add.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xlprobe import costs as cost
from xlprobe.hubdata import config_datasets
from xlprobe.workflow_config import with_defaults

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


def _steps(config) -> list[tuple[str, str]]:
    return [(m, str(s)) for m, spec in config["models"].items() for s in spec["steps"]]


def _words(config, treebank, workdir: Path) -> tuple[int, list[cost.AttributeSize], str]:
    """Tokens and attribute sizes of a treebank: from its built tables when present, else estimated."""
    words_dir = Path(workdir, config["results"], "words")
    attributes = words_dir / f"{treebank}.attributes.tsv"
    spec = config["treebanks"][treebank]
    if attributes.exists():
        with open(words_dir / f"{treebank}.tsv", "rb") as handle:
            tokens = sum(1 for _ in handle) - 1
        return tokens, cost.attribute_sizes(attributes), "word table"
    if "demo" in config:  # synthetic sentences of about 10 words
        tokens = 10 * int(config["demo"].get("treebank_sentences", 1500))
    else:
        tokens = cost.tokens_of(spec["folder"])
    return tokens, cost.estimated_attribute_sizes(tokens, config["words"].get("split")), "estimated size"


def plan(
    config: Mapping[str, Any], costs: Mapping[str, float] | None = None, workdir: str | os.PathLike = "."
) -> list[dict[str, Any]]:
    """One row per rule: jobs, device, estimated CPU-hours, GPU-hours and disk (GB).

    `workdir` is where the workflow runs: the config's relative paths (ud_root, results) start there.
    """
    costs = costs or cost.unit_costs()
    if SCHEMA.exists():  # the schema's defaults, as the workflow fills them in (a source checkout)
        config = with_defaults(copy.deepcopy(dict(config)), SCHEMA)
    points = _steps(config)
    treebanks = list(config["treebanks"])
    layers = [int(layer) for layer in config["activations"]["layers"]]
    probe_on_gpu = cost.probe_device(config["probe"]) != "cpu"
    sizes = {tb: _words(config, tb, Path(workdir)) for tb in treebanks}
    probed = [tb for tb in treebanks if sizes[tb][1]]
    shapes = {m: cost.model_shape(m, spec) for m, spec in config["models"].items()}
    hub_points = [(m, s) for m, s in points if config["models"][m]["source"] != "demo"]

    dump_h = probe_h = disk_activations = disk_checkpoints = 0.0
    for model, _ in points:
        hidden, _, params = shapes[model]
        disk_checkpoints += 2 * params / 1e9 if config["models"][model]["source"] != "demo" else 0
        width = cost.dumped_width(hidden, config["activations"])
        for tb in probed:
            tokens, attributes, _ = sizes[tb]
            dump_h += cost.dump_seconds(tokens, hidden, max(layers), costs) / 3600
            disk_activations += tokens * width * 2 * len(layers) / 1e9
            probe_h += len(layers) * cost.probe_seconds(attributes, width, config["probe"], costs) / 3600

    tasks = config.get("transfer", {}).get("tasks", {})
    settings = {k: v for k, v in config.get("transfer", {}).items() if k != "tasks"}
    transfer_h = sum(
        cost.transfer_seconds(task, settings, shapes[m][2], costs) / 3600
        for m, _ in points
        for task in tasks.values()
    )
    similarity = config.get("similarity") or {}
    similarity_h = (
        sum(cost.similarity_seconds(similarity, shapes[m][2], costs) / 3600 for m, _ in points)
        if similarity
        else 0.0
    )

    lm_loss_h = sum(
        cost.lm_loss_seconds(similarity, config.get("checks") or {}, shapes[m][2], costs) / 3600 for m, _ in points
    )

    readout_h = 0.0
    for model, _ in points if "probe_transfer" in config else []:
        width = cost.dumped_width(shapes[model][0], config["activations"])
        readout_h += len(layers) * cost.probe_transfer_seconds(
            [sizes[tb][1] for tb in probed], width, config["probe_transfer"], costs) / 3600

    def row(rule, jobs, device, hours=0.0, disk=0.0, note=""):
        return {
            "rule": rule,
            "jobs": jobs,
            "device": device,
            "cpu_hours": hours if device == "CPU" else 0.0,
            "gpu_hours": hours if device == "GPU" else 0.0,
            "disk_gb": disk,
            "note": note,
        }

    sources = sorted({sizes[tb][2] for tb in treebanks})
    demo = "demo" in config
    missing = (
        []
        if demo
        else [
            tb
            for tb in treebanks
            if not Path(workdir, config["ud_root"], config["treebanks"][tb]["folder"]).is_dir()
        ]
    )
    demo_models = [m for m, spec in config["models"].items() if spec["source"] == "demo"]
    return [
        *(
            [row("generate_demo_data", 1, "CPU"), row("train_demo_tokenizer", 1, "CPU")]
            if demo
            else [
                row("download_ud_release", int(bool(missing)), "local"),
                row("extract_treebank", len(missing), "local"),
            ]
        ),
        *([row("pretrain_demo_model", len(demo_models), "CPU")] if demo_models else []),
        row("download_checkpoint", len(hub_points), "local", disk=disk_checkpoints, note="HF cache, float16"),
        row("prefetch_dataset", len(config_datasets(config)), "local", note="HF datasets cache"),
        row("build_word_table", len(treebanks), "CPU", note="rows from: " + ", ".join(sources)),
        row(
            "dump_activations",
            len(points) * len(probed),
            "GPU",
            dump_h,
            disk_activations,
            "float16 activations",
        ),
        row(
            "probe",
            len(points) * len(layers) * len(probed),
            "GPU" if probe_on_gpu else "CPU",
            probe_h,
            note="CPU time used as the GPU bound" if probe_on_gpu else "1 thread",
        ),
        row("compute_overlap", len(points) * len(layers), "CPU"),
        row("probe_transfer", len(points) * len(layers), "CPU", readout_h, note="1 thread; an upper bound"),
        row("transfer", len(points) * len(tasks), "GPU", transfer_h),
        row("similarity", len(points) if similarity else 0, "GPU", similarity_h),
        row("lm_loss", len(points), "GPU", lm_loss_h, note="checkpoint checks"),
        row("alignment_table, correlations, plot_figures, all", 4, "CPU"),
    ]


def format_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    header = ["rule", "jobs", "device", "CPU-hours", "GPU-hours", "disk (GB)", "note"]
    total = {
        "rule": "total",
        "jobs": sum(r["jobs"] for r in rows),
        "device": "",
        "cpu_hours": sum(r["cpu_hours"] for r in rows),
        "gpu_hours": sum(r["gpu_hours"] for r in rows),
        "disk_gb": sum(r["disk_gb"] for r in rows),
        "note": "",
    }
    cells = [
        [
            r["rule"],
            str(r["jobs"]),
            r["device"],
            f"{r['cpu_hours']:.1f}" if r["cpu_hours"] else "-",
            f"{r['gpu_hours']:.1f}" if r["gpu_hours"] else "-",
            f"{r['disk_gb']:.1f}" if r["disk_gb"] else "-",
            r["note"],
        ]
        for r in [*rows, total]
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(x) for x in column) for column in zip(header, *cells)]
    return "\n".join(
        "  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *cells]
    )


def plan_cli(args: argparse.Namespace) -> int:
    import yaml

    started = time.perf_counter()
    config = yaml.safe_load(Path(args.config).read_text())
    costs = cost.unit_costs(args.unit_costs)
    table = format_table(plan(config, costs, args.directory), markdown=args.markdown)
    print(
        f"Estimates for {args.config} from unit costs in {args.unit_costs or cost.DATA / 'unit_costs.tsv'} "
        "(measured on one CPU thread, GPU rates assumed; see the table's source column). Requests add x"
        f"{cost.RUNTIME_SAFETY:g} runtime, x{cost.MEMORY_SAFETY:g} memory."
    )
    print(table)
    print(f"({time.perf_counter() - started:.1f} s, {os.cpu_count()} CPUs)")
    return 0
