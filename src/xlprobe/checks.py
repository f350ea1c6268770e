"""Verdicts on checkpoints from their records (xlprobe.lm_loss writes them): which steps repeat an
earlier step's weights (`duplicate_of`), and which look broken (`suspect`).

Light on purpose (no torch, no hub client): the analysis stage imports it.

The suspect rule, over one model's steps in their listed order, with `m` = `checks.suspect_margin`
nats (default 1.0, a perplexity e times higher). A step is suspect when its LM loss
- is not a finite number (the forward pass overflowed or met NaN weights), or
- is more than m above the lowest loss of the run's (model and seed) earlier steps that are not suspect themselves
  (training lowers the loss on held-out text; it does not raise it by a nat), or
- is more than m above ln V, the loss of a uniform guess over the model's V output tokens (an
  untrained model sits at about ln V; only a broken one is far above it).
The second clause covers the interior and the last step, and two or more neighbouring broken
checkpoints (each is compared with the healthy steps before it, not with its broken neighbour); the
third covers the first step, which has nothing earlier and is legitimately the highest of a healthy
series. A difference of losses in nats is a log ratio of perplexities, so one margin suits small and
large vocabularies and early and late training. Healthy neighbouring BLOOM checkpoints differ by a
small fraction of a nat; the reported broken bloom-560m `global_step600000` (perplexity about 3·10⁵,
about 12.6 nats) is many nats above the steps before it. Not caught: a broken first step less than m
above ln V. docs/checks.md gives the numbers the rule was checked on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xlprobe.io import read_json

DEFAULT_MARGIN = 1.0  # nats: config/schema.yaml's checks.suspect_margin (tests/test_library_defaults.py)


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


def suspects(losses: Sequence[tuple[Any, float | None]], margin: float = DEFAULT_MARGIN,
             uniform: float | None = None) -> dict[Any, str]:
    """The steps of one model flagged by the suspect rule (see the module's docstring), each with its
    reason; `losses` is [(step, loss)] in step order, `uniform` ln of the output width where known.

    A step with no loss (None or NaN) is never suspect and takes no part; an infinite loss stands for
    one that is not a finite number.
    """
    flagged: dict[Any, str] = {}
    best: tuple[Any, float] | None = None  # the lowest loss of the earlier steps not flagged
    for step, loss in losses:
        if loss is None or math.isnan(loss):
            continue
        if math.isinf(loss):
            flagged[step] = "LM loss not a finite number"
            continue
        above = []
        if best is not None and loss > best[1] + margin:
            above.append(f"{loss - best[1]:.2f} above step {best[0]}'s {best[1]:.3f} (the lowest of the earlier steps)")
        if uniform is not None and loss > uniform + margin:
            above.append(f"{loss - uniform:.2f} above a uniform guess (ln of the output width, {uniform:.3f})")
        if above:
            flagged[step] = f"LM loss {loss:.3f} nats, " + ", ".join(above)
        elif best is None or loss < best[1]:
            best = (step, loss)
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
