"""Verdicts on checkpoints from their records (xlprobe.lm_loss writes them): which steps repeat an
earlier step's weights (`duplicate_of`), and which look broken (`suspect`).

Light on purpose (no torch, no hub client): the analysis stage imports it.

The suspect rule: a checkpoint whose loss is more than `checks.suspect_margin` nats (default 1.0,
a perplexity e times higher) above both neighbouring steps of its model. A difference of losses in nats
is a log ratio of perplexities, so one margin suits small and large vocabularies and early and late
training. The last step has one neighbour and is compared with it (a broken newest checkpoint is the
likeliest case when steps are discovered); the first step never is: loss falls fastest at the start,
so the first listed step is legitimately the highest. Healthy neighbouring BLOOM checkpoints differ by a
small fraction of a nat; the reported broken bloom-560m `global_step600000` (perplexity about 3·10⁵,
about 12.6 nats) is many nats above its neighbours. Two broken neighbours hide each other (a limitation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xlprobe.io import read_json

DEFAULT_MARGIN = 1.0  # nats


def read_checks(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The records of `run_lm_loss` (model, step, lm_loss, weights), each checked for its keys."""
    records = []
    for path in paths:
        record = read_json(path)
        missing = {"model", "step", "lm_loss", "weights"} - set(record)
        if missing:
            raise ValueError(f"{path}: missing keys {sorted(missing)} (made by an older xlprobe: rerun it)")
        records.append({**record, "path": str(Path(path))})
    return records


def suspects(losses: Sequence[tuple[Any, float]], margin: float = DEFAULT_MARGIN) -> set:
    """The steps of one model flagged by the suspect rule; `losses` is [(step, loss)] in step order.

    Interior step: loss > both neighbours' + margin. Last step: > its one neighbour's + margin.
    First step: never. A step with no loss (NaN) is never suspect and is no one's neighbour.
    """
    known = [(step, loss) for step, loss in losses if loss is not None and not math.isnan(loss)]
    flagged = set()
    for i, (step, loss) in enumerate(known):
        if i == 0:
            continue
        neighbours = [known[i - 1][1]] + ([known[i + 1][1]] if i + 1 < len(known) else [])
        if all(loss > other + margin for other in neighbours):
            flagged.add(step)
    return flagged


def fingerprint(weights: Mapping[str, Mapping[str, str]] | None) -> tuple | None:
    """What two checkpoints with the same weights share: their (file, sha256) pairs; None if unknown."""
    if not weights:
        return None
    return tuple(sorted((name, entry["sha256"]) for name, entry in weights.items()))


def duplicates(points: Iterable[tuple[str, Any, Mapping | None]]) -> dict[tuple[str, Any], Any]:
    """(model, step) -> the first earlier step of that model with the same weights.

    `points` are (model, step, weights) in step order per model; a step with no weights record is
    never a duplicate.
    """
    first: dict[tuple[str, tuple], Any] = {}
    found = {}
    for model, step, weights in points:
        key = fingerprint(weights)
        if key is None:
            continue
        if (model, key) in first:
            found[(model, step)] = first[(model, key)]
        else:
            first[(model, key)] = step
    return found
