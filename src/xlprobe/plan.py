"""`xlprobe plan`: before anything runs, what a config's grid will cost.

The jobs are Snakemake's own: the workflow's DAG for the config, built as a dry run builds it (the
same jobs `snakemake -n` lists, rule by rule: treebanks without an attribute to probe drop out once
their word tables exist, finished jobs are not listed). Each job's resources are what its rule's
resource functions ask for. Hours are estimates from the unit costs (xlprobe.costs) and each model's
shape, read from its config.json (xlprobe.model_shape), without the safety factor the requests add.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xlprobe import costs as cost
from xlprobe.resolved_config import ResolvedConfig, resolve_config

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    resources: dict[str, Any]
    local: bool


def dag_jobs(configfile: str | os.PathLike, workdir: str | os.PathLike = ".",
             snakefile: str | os.PathLike = SNAKEFILE) -> list[PlannedJob]:
    """The jobs a dry run of the workflow would list for `configfile`, run in `workdir`.

    The DAG is built as `snakemake -n` builds it (its dry-run executor: input functions that wait on a
    checkpoint see a dry run), without scheduling or printing its jobs (a third of a dry run's time).
    """
    configfile, workdir, snakefile = (Path(p).resolve() for p in (configfile, workdir, snakefile))
    # The workflow sets offline mode for its jobs (rules/common.smk): not for the process that plans.
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        return _dag_jobs(configfile, workdir, snakefile)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _dag_jobs(configfile: Path, workdir: Path, snakefile: Path) -> list[PlannedJob]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=snakefile,
            workdir=workdir,
        )
        workflow_api.dag(DAGSettings())
        # Snakemake's API builds a DAG only to run, print or summarise it: its workflow's own steps here.
        workflow = workflow_api._workflow
        workflow._executor_plugin = ExecutorPluginRegistry().get_plugin("dryrun")
        workflow._prepare_dag(forceall=False, ignore_incomplete=False, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        dag = workflow.dag
        order = {rule.name: i for i, rule in enumerate(workflow.rules)}  # as the rule files define them
        jobs = sorted((job for job in dag.jobs if dag.needrun(job)), key=lambda job: order[job.rule.name])
        local = {rule.name for rule in workflow.rules if rule.name in workflow._localrules or rule.norun}
        return [PlannedJob(job.rule.name, dict(job.wildcards), dict(job.resources), job.rule.name in local)
                for job in jobs]


def _treebank_words(resolved: ResolvedConfig, treebank: str) -> tuple[int, list[cost.AttributeSize], str]:
    """Tokens and attribute sizes of a treebank: from its built tables when present, else estimated."""
    config = resolved.config
    words_dir = resolved.path(config["results"]) / "words"
    attributes = words_dir / f"{treebank}.attributes.tsv"
    if attributes.exists():
        with open(words_dir / f"{treebank}.tsv", "rb") as handle:
            tokens = sum(1 for _ in handle) - 1
        return tokens, cost.attribute_sizes(attributes), "word table"
    if resolved.is_demo:  # synthetic sentences of about 10 words
        tokens = 10 * int(config["demo"]["treebank_sentences"])
    else:
        tokens = cost.tokens_of(config["treebanks"][treebank]["folder"], strict=False)
    return tokens, cost.estimated_attribute_sizes(tokens, config["words"]["split"]), "estimated size"


def job_estimate(job: PlannedJob, resolved: ResolvedConfig, costs: Mapping[str, float], words) -> tuple[float, float]:
    """(estimated seconds, disk GB) of one job; (0, 0) for a job that is cheap or whose model's shape is unknown."""
    config, wildcards = resolved.config, job.wildcards
    shape = resolved.model_shape(wildcards["model"]) if "model" in wildcards else None
    if shape is None:
        return 0.0, 0.0
    layers = [int(layer) for layer in config["activations"]["layers"]]
    if job.rule == "download_checkpoint":
        return 0.0, 2 * shape.parameters / 1e9  # float16 weights
    if job.rule == "dump_activations":
        tokens = words(wildcards["treebank"])[0]
        width = cost.dumped_width(shape, config["activations"])
        return cost.dump_seconds(tokens, shape.hidden, max(layers), costs), tokens * width * 2 * len(layers) / 1e9
    if job.rule == "probe":
        width = cost.dumped_width(shape, config["activations"])
        return cost.probe_seconds(words(wildcards["treebank"])[1], width, config["probe"], costs), 0.0
    if job.rule == "probe_transfer":
        width = cost.dumped_width(shape, config["activations"])
        sizes = [words(tb)[1] for tb in config["treebanks"] if words(tb)[1]]
        return cost.probe_transfer_seconds(sizes, width, config["probe_transfer"], costs), 0.0
    if job.rule == "transfer":
        settings = {k: v for k, v in config["transfer"].items() if k != "tasks"}
        task = config["transfer"]["tasks"][wildcards["task"]]
        return cost.transfer_seconds(task, settings, shape.parameters, costs), 0.0
    if job.rule == "similarity":
        return cost.similarity_seconds(config["similarity"], shape.parameters, costs), 0.0
    if job.rule == "lm_loss":
        return cost.lm_loss_seconds(config.get("similarity") or {}, config["checks"], shape.parameters, costs,
                                    config["treebanks"]), 0.0
    return 0.0, 0.0


def plan(
    configfile: str | os.PathLike | Mapping[str, Any],
    costs: Mapping[str, float] | None = None,
    workdir: str | os.PathLike = ".",
    snakefile: str | os.PathLike = SNAKEFILE,
) -> list[dict[str, Any]]:
    """One row per rule of the DAG: jobs, device, estimated CPU-hours, GPU-hours, disk (GB), the
    hours its jobs ask for (runtime) and the most memory one asks for (mem_mb).

    `configfile` is a config file (or a config, written to a temporary file for Snakemake); `workdir`
    is where the workflow runs: the config's relative paths (ud_root, results, hf_cache) start there.
    """
    costs = costs or cost.unit_costs()
    if not isinstance(configfile, (str, os.PathLike)):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "config.yaml")
            path.write_text(yaml.safe_dump(dict(configfile)))
            return plan(path, costs, workdir, snakefile)
    resolved = resolve_config(yaml.safe_load(Path(configfile).read_text()), workdir=workdir)
    for model in resolved.config["models"]:  # config.json from the hub before the DAG sets offline mode
        resolved.model_shape(model)
    jobs = dag_jobs(configfile, workdir, snakefile)

    sizes: dict[str, tuple] = {}

    def words(treebank):
        if treebank not in sizes:
            sizes[treebank] = _treebank_words(resolved, treebank)
        return sizes[treebank]

    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        device = "local" if job.local else "GPU" if int(job.resources.get("gpu", 0)) else "CPU"
        row = rows.setdefault(job.rule, {"rule": job.rule, "jobs": 0, "device": device, "cpu_hours": 0.0,
                                          "gpu_hours": 0.0, "disk_gb": 0.0, "asked_hours": 0.0, "mem_mb": 0})
        seconds, disk = job_estimate(job, resolved, costs, words)
        row["jobs"] += 1
        row["gpu_hours" if device == "GPU" else "cpu_hours"] += seconds / 3600
        row["disk_gb"] += disk
        row["asked_hours"] += int(job.resources.get("runtime", 0)) / 60 if not job.local else 0.0
        row["mem_mb"] = max(row["mem_mb"], int(job.resources.get("mem_mb", 0)))
    unknown = [m for m in resolved.config["models"] if resolved.model_shape(m) is None]
    for row in rows.values():
        notes = []
        if row["rule"] == "build_word_table" or row["rule"] == "probe":
            notes.append("rows from: " + ", ".join(sorted({words(tb)[2] for tb in resolved.config["treebanks"]})))
        if unknown and row["rule"] in ("download_checkpoint", "dump_activations", "probe", "transfer",
                                       "similarity", "lm_loss"):
            notes.append(f"no config.json for {', '.join(unknown)}: not estimated")
        row["note"] = "; ".join(notes)
    return list(rows.values())


def format_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    header = ["rule", "jobs", "device", "CPU-hours", "GPU-hours", "disk (GB)", "asked (h)", "max mem_mb", "note"]
    total = {
        "rule": "total",
        "jobs": sum(r["jobs"] for r in rows),
        "device": "",
        **{key: sum(r[key] for r in rows) for key in ("cpu_hours", "gpu_hours", "disk_gb", "asked_hours")},
        "mem_mb": max((r["mem_mb"] for r in rows), default=0),
        "note": "",
    }

    def hours(value):
        return f"{value:.1f}" if value else "-"

    cells = [
        [r["rule"], str(r["jobs"]), r["device"], hours(r["cpu_hours"]), hours(r["gpu_hours"]), hours(r["disk_gb"]),
         hours(r["asked_hours"]), str(r["mem_mb"] or "-"), r["note"]]
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
    started = time.perf_counter()
    costs = cost.unit_costs(args.unit_costs)
    table = format_table(plan(args.config, costs, args.directory), markdown=args.markdown)
    print(
        f"Estimates for {args.config} from unit costs in {args.unit_costs or cost.DATA / 'unit_costs.tsv'} "
        "(its source column says which rates were measured, on what, and which are assumed), jobs from "
        f"Snakemake's DAG. Requests add x{cost.RUNTIME_SAFETY:g} runtime, x{cost.MEMORY_SAFETY:g} memory "
        "(asked: the runtime the jobs request)."
    )
    print(table)
    print(f"({time.perf_counter() - started:.1f} s, {os.cpu_count()} CPUs)")
    return 0
