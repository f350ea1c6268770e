"""What a result is a result of: its model, pre-training seed, step, layer, treebank and probe replicate.

`point` writes these fields, the one way every per-point result records them: the probe JSON and the
LM-loss record carry them as keys, every per-point table (overlap, stability, transfer, similarity,
probe transfer) as its first columns (`with_identity`), and the aggregates read them from there,
never from file names.

A model with `seeds: [...]` runs once per pre-training seed. Each such run has a name of its own
(`run_name`), used in file paths only; results name the model and the seed apart. Demo models: the
seed initialises the weights and orders the pre-training data (the synthetic languages stay those of
the config's seed). Hub and local models: the seed fills a `{seed}` field of `repo`, `revision` or
`path` (PolyPythias: repo `EleutherAI/pythia-160m-seed{seed}`, revision `step{step}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

FINAL = "final"
# Fields of a model entry that name where its weights are, where `{seed}` is filled in.
SEEDED_FIELDS = ("repo", "revision", "path")


def step_value(step: str | int) -> int | str:
    """The step as written in tables: an int, or 'final'."""
    return FINAL if str(step) == FINAL else int(step)


def point(
    model: str,
    step: str | int,
    *,
    seed: int | None = None,
    layer: int | str | None = None,
    treebank: str | None = None,
    replicate: int | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """A result's identity: model, seed (None for a model without `seeds`), step and, where the result
    has them, layer, treebank, replicate and transfer task, with their types fixed."""
    fields: dict[str, Any] = {"model": str(model), "seed": None if seed is None else int(seed),
                              "step": step_value(step)}
    if layer is not None:
        fields["layer"] = int(layer)
    if treebank is not None:
        fields["treebank"] = str(treebank)
    if replicate is not None:
        fields["replicate"] = int(replicate)
    if task is not None:
        fields["task"] = str(task)
    return fields


def with_identity(frame: pd.DataFrame, point: Mapping[str, Any]) -> pd.DataFrame:
    """`frame` with the point's identity fields as its first columns."""
    identity = pd.DataFrame({key: [value] * len(frame) for key, value in point.items()}, index=frame.index)
    return pd.concat([identity, frame], axis=1)


def identity_of(frame: pd.DataFrame, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The identity a table's first row carries (`with_identity`): `fields` plus the seed, typed as
    `point` types them; None for a table without rows."""
    if frame.empty:
        return None
    first = frame.iloc[0]
    seed = first.get("seed")
    found = point(first["model"], first["step"], seed=None if seed is None or pd.isna(seed) else seed,
                  **{key: first[key] for key in fields if key not in ("model", "step")})
    return found


def replicate_attributes(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per probe replicate of a probe result, attribute -> its record: `attributes` is replicate 0,
    `replicate_attributes` the others (absent in a result of one replicate)."""
    return [result["attributes"], *result.get("replicate_attributes", [])]


def run_name(model: str, seed: int | None) -> str:
    """The folder name of one pre-training run of a model: the model's name, with its seed if it has seeds."""
    return model if seed is None else f"{model}-seed{seed}"


def model_runs(models: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run name -> {model, seed} for every model of a config (one run per seed of a model with `seeds`)."""
    runs: dict[str, dict[str, Any]] = {}
    for name, spec in models.items():
        seeds = spec.get("seeds")
        templated = [f for f in SEEDED_FIELDS if "{seed}" in str(spec.get(f, ""))]
        if seeds and spec["source"] != "demo" and not templated:
            raise ValueError(f"models.{name}.seeds: needs a {{seed}} field in one of {list(SEEDED_FIELDS)}")
        if templated and not seeds:
            raise ValueError(f"models.{name}.{templated[0]}: has a {{seed}} field but models.{name}.seeds is not set")
        for seed in seeds or [None]:
            run = run_name(name, seed)
            if run in runs or (seed is not None and run in models):
                raise ValueError(f"models.{name}.seeds: run '{run}' collides with another model's name")
            runs[run] = {"model": name, "seed": seed}
    return runs


def run_spec(models: Mapping[str, Mapping[str, Any]], run: Mapping[str, Any]) -> dict[str, Any]:
    """The model entry of one run: the model's, without `seeds`, its `{seed}` fields filled in, and
    (for a seeded run) `model` and `seed` beside them."""
    spec = {key: value for key, value in models[run["model"]].items() if key != "seeds"}
    if run["seed"] is None:
        return spec
    for field in SEEDED_FIELDS:
        if field in spec:
            spec[field] = str(spec[field]).replace("{seed}", str(run["seed"]))
    return {**spec, "model": run["model"], "seed": run["seed"]}


def model_point(model: Mapping[str, Any], step: str | int, **fields: Any) -> dict[str, Any]:
    """The identity of a result of one run's model slice (`name` plus the run's entry, see run_spec);
    `fields`: its layer, treebank, replicate or task (see `point`)."""
    return point(model.get("model", model["name"]), step, seed=model.get("seed"), **fields)
