"""A workflow config resolved once: what every rule, script, stage and `xlprobe plan` reads.

`resolve_config` fills in the schema's defaults (config/schema.yaml is the one place a default is
written), checks the config (every error names its key), lists discovered steps, turns a probe's
`device: auto` into the device its job asks for (xlprobe.devices), and derives what several places
would otherwise each decide: whether this is the demo and where its files go, the hub datasets with
their splits, the figures drawn, each model's shape. Nothing here imports torch or Snakemake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlprobe.devices import job_device
from xlprobe.discovery import discover_steps, recorded_branches
from xlprobe.figures import FIGURE_NAMES
from xlprobe.hubdata import config_datasets
from xlprobe.identity import model_runs, run_spec
from xlprobe.model_shape import ModelShape, ShapeUnknown, model_shape
from xlprobe.workflow_config import SCHEMA, check_config, schema_defaults, with_defaults


def steps_record(config: Mapping[str, Any], model: str) -> str:
    """Where a model's discovered steps are recorded (relative to the workflow's directory)."""
    return f"{config['results']}/steps/{model}.json"


@dataclass
class ResolvedConfig:
    config: dict[str, Any]
    steps: dict[str, list[str]]
    workdir: Path = Path(".")
    _shapes: dict[str, ModelShape] = field(default_factory=dict, repr=False)

    @property
    def is_demo(self) -> bool:
        """The embedded demo: generated treebanks and tiny models, demo-sized job requests."""
        return "demo" in self.config

    @property
    def demo_dir(self) -> str:
        return self.config["demo"]["dir"] if self.is_demo else schema_defaults("demo")["dir"]

    @property
    def demo_models(self) -> list[str]:
        return [m for m, spec in self.config["models"].items() if spec["source"] == "demo"]

    @property
    def figures(self) -> list[str]:
        return [name for name in FIGURE_NAMES if name != "similarity_vs_step" or self.config.get("similarity")]

    @property
    def hub_datasets(self) -> dict[tuple[str, str], list[str]]:
        """(repo, config name) -> splits of every hub dataset the config reads."""
        return config_datasets(self.config)

    @property
    def probe_device(self) -> str:
        return self.config["probe"]["device"]

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        """Run name -> {model, seed}: one run per pre-training seed of a model with `seeds`, else the
        model itself (xlprobe.identity). The `model` wildcard of every path is a run's name."""
        return model_runs(self.config["models"])

    @property
    def branches(self) -> dict[str, dict[str, str]]:
        """Model -> {step: branch} of its discovered steps, as listed (step0005000,
        stage1-step1000-tokens5B: a zero-padded or `{*}` branch cannot be spelled from the step alone);
        empty for a model with a step list."""
        return {name: recorded_branches(self.path(steps_record(self.config, name)))
                if isinstance(spec["steps"], dict) else {} for name, spec in self.config["models"].items()}

    def points(self) -> list[tuple[str, str]]:
        """Every (run, step) of the grid."""
        return [(run, step) for run, of in self.runs.items() for step in self.steps[of["model"]]]

    def model_shape(self, run: str) -> ModelShape | None:
        """A model's shape from its config.json, or None where none can be read yet (see xlprobe.model_shape).

        Only a shape found is kept: download_checkpoint puts config.json into the cache during the run,
        and the jobs after it are sized from it.
        """
        runs = self.runs
        of = runs.get(run) or {"model": run, "seed": None}
        model = of["model"]
        if model not in self._shapes:  # every seed of a model has one shape: its first run's is read
            first = next(r for r in runs.values() if r["model"] == model)
            try:
                self._shapes[model] = model_shape(
                    model, run_spec(self.config["models"], first), self.steps[model], demo=self.config.get("demo"),
                    cache_dir=self.path(self.config["hf_cache"]) if self.config.get("hf_cache") else None,
                    branches=self.branches[model],
                )
            except ShapeUnknown:
                return None
        return self._shapes[model]

    def path(self, relative: str | os.PathLike) -> Path:
        """A path of the config, relative to the workflow's directory."""
        return Path(self.workdir, relative)


def resolve_config(
    config: dict[str, Any],
    *,
    schema_path: str | os.PathLike = SCHEMA,
    workdir: str | os.PathLike = ".",
    refresh_steps: bool = False,
) -> ResolvedConfig:
    """Resolve `config` in place (defaults, devices) and return it with its steps.

    `refresh_steps`: list discovered steps from the hub and record them (the submit host); otherwise a
    discovery config reads the recorded list.
    """
    with_defaults(config, schema_path)
    check_config(config, workdir=workdir, schema_path=schema_path)
    config["probe"]["device"] = job_device(config["probe"]["device"])
    steps = {
        name: (
            discover_steps({"name": name, **spec}, Path(workdir, steps_record(config, name)), refresh=refresh_steps)
            if isinstance(spec["steps"], dict)
            else [str(step) for step in spec["steps"]]
        )
        for name, spec in config["models"].items()
    }
    return ResolvedConfig(config, steps, Path(workdir))


def load_config(path: str | os.PathLike, **options: Any) -> ResolvedConfig:
    """Read a config file and resolve it (see `resolve_config`)."""
    config = yaml.safe_load(Path(path).read_text())
    if not isinstance(config, dict):
        raise TypeError(f"{path}: not a YAML mapping")
    return resolve_config(config, **options)
