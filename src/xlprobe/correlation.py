"""Correlations of neuron overlap with transfer (and similarity) across checkpoints, with uncertainty.

Pearson and Spearman coefficients and p-values come from scipy.stats. The 95% interval is a
percentile bootstrap over (model, step) points, resampled with replacement from a seeded generator.
It is written out here rather than with scipy.stats.bootstrap because with a handful of checkpoints
many resamples repeat one point (a constant sample, no correlation defined); those resamples are
dropped and counted instead of turning the whole interval into NaN. Below MIN_INTERVAL_POINTS there
is no interval: of 3 points, 18 of the 27 resamples hold 2 distinct points, whose correlation is ±1
by construction, and the "95%" interval held a known correlation in 41-67% of synthetic series
(benchmarks/validity.py; docs/validity.md has the coverage at more points).

Pre-training seeds: a model with several seeds gets one row per seed (its checkpoints resampled as
above) and a row pooled over its seeds (`seed` = pooled), as does the pool over models. A pooled
row's interval resamples in two stages, as the data were made: seeds (runs) with replacement, then
the checkpoints of each drawn run with replacement (a cluster bootstrap: checkpoints of one run share
its weights' history and are no independent draws).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from xlprobe.alignment import read_table
from xlprobe.identity import run_name
from xlprobe.io import write_json, write_tsv
from xlprobe.provenance import provenance, sidecar_path

log = logging.getLogger(__name__)

MEASURES = ("overlap", "overlap_minus_chance", "overlap_over_chance")
SIMILARITY_TARGETS = ("similarity", "similarity_all_layers")
# Alignment measures beside the overlap, each correlated with every transfer target (where present).
ALIGNMENT_MEASURES = ("probe_transfer", "retrieval", "similarity")
POOLED = "pooled"
MIN_POINTS = 3
MIN_INTERVAL_POINTS = 4
COLUMNS = [
    "layer",
    "measure",
    "target",
    "model",
    "seed",
    "finals",
    "n",
    "pearson_r",
    "pearson_p",
    "pearson_ci_low",
    "pearson_ci_high",
    "spearman_rho",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "bootstrap",
    "bootstrap_valid",
    "note",
]


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x with the same row of y; NaN where a row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / denominator
    # A tiny denominator from rounding on a constant row is as undefined as an exact zero.
    r[denominator <= 1e-12 * max(1.0, float(np.nanmax(np.abs(denominator), initial=0)))] = np.nan
    return np.clip(r, -1.0, 1.0)


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "pearson": _rowwise_pearson,
    "spearman": _rowwise_spearman,
}


def bootstrap_ci(
    x: Sequence[float], y: Sequence[float], statistic: str, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float, int]:
    """Percentile bootstrap interval of a paired statistic; also the number of usable resamples."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if resamples <= 0 or len(x) < MIN_INTERVAL_POINTS:
        return np.nan, np.nan, 0
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(x), size=(resamples, len(x)))
    values = STATISTICS[statistic](x[index], y[index])
    return _percentile_interval(values, level)


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    """The central `level` range of the resampled statistics that are defined, and their number."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.nan, np.nan, 0
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), len(values)


def clustered_bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    clusters: Sequence,
    statistic: str,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float, int]:
    """Percentile interval of a paired statistic from a two-stage bootstrap: clusters (runs) with
    replacement, then the points of each drawn cluster with replacement; also the usable resamples."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if resamples <= 0 or len(x) < MIN_INTERVAL_POINTS:
        return np.nan, np.nan, 0
    members = [np.flatnonzero(np.asarray(clusters) == c) for c in dict.fromkeys(clusters)]
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, len(members), size=len(members))
        index = np.concatenate([rng.choice(members[c], size=len(members[c])) for c in drawn])
        values[b] = STATISTICS[statistic](x[index][None, :], y[index][None, :])[0]
    return _percentile_interval(values, level)


def correlate(
    x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0, clusters: Sequence | None = None
) -> dict:
    """Pearson and Spearman with p-values and bootstrap 95% intervals; NaN with a note when undefined.

    `clusters` (one label per point, e.g. the pre-training run): resample clusters, then points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=object)[keep]
    result = {"n": len(x), "bootstrap": int(resamples), "bootstrap_valid": 0, "note": ""}
    for name in COLUMNS:
        if name.startswith(("pearson_", "spearman_")):
            result[name] = np.nan
    if len(x) < MIN_POINTS:
        result["note"] = f"fewer than {MIN_POINTS} points"
        return result
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        result["note"] = "constant input"
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
    result["pearson_r"], result["pearson_p"] = float(pearson.statistic), float(pearson.pvalue)
    result["spearman_rho"], result["spearman_p"] = float(spearman.statistic), float(spearman.pvalue)
    def interval(statistic):
        if clusters is None:
            return bootstrap_ci(x, y, statistic, resamples, seed)
        return clustered_bootstrap_ci(x, y, clusters, statistic, resamples, seed)

    result["pearson_ci_low"], result["pearson_ci_high"], valid = interval("pearson")
    result["spearman_ci_low"], result["spearman_ci_high"], _ = interval("spearman")
    result["bootstrap_valid"] = valid
    if resamples and len(x) < MIN_INTERVAL_POINTS:
        result["note"] = f"no bootstrap interval below {MIN_INTERVAL_POINTS} points"
    elif resamples and valid < resamples:
        result["note"] = f"{resamples - valid} bootstrap resamples were constant and dropped"
    return result


def correlation_targets(alignment: pd.DataFrame) -> list[str]:
    """Columns correlated with overlap: each task's mean target score, then similarity at the probed
    layer and over all layers (each its own column, so the `target` of a correlation says which)."""
    tasks = [c for c in alignment if c.startswith("transfer_") and not c.endswith(("_source", "_metric"))]
    return tasks + [c for c in SIMILARITY_TARGETS if c in alignment]


def transfer_targets(alignment: pd.DataFrame) -> list[str]:
    """Each task's mean target score."""
    return [c for c in correlation_targets(alignment) if c.startswith("transfer_")]


def correlation_table(
    alignment: pd.DataFrame,
    resamples: int = 1000,
    seed: int = 0,
    measures: Sequence[str] = MEASURES,
    targets: Sequence[str] | None = None,
    alignment_measures: Sequence[str] = ALIGNMENT_MEASURES,
) -> pd.DataFrame:
    """Every overlap measure vs every target, and every other alignment measure present vs every
    transfer target; per layer, per model (per seed and pooled over seeds,
    where a model has several) and pooled over models, with and without finals."""
    targets = correlation_targets(alignment) if targets is None else list(targets)
    seeds = alignment["seed"] if "seed" in alignment else pd.Series(pd.NA, index=alignment.index)
    runs = pd.Series([run_name(m, None if pd.isna(s) else int(s)) for m, s in zip(alignment["model"], seeds)],
                     index=alignment.index)
    groups = []  # (model, seed, mask, clustered)
    for model in dict.fromkeys(alignment["model"]):
        of_model = alignment["model"].eq(model)
        model_seeds = list(dict.fromkeys(seeds[of_model].dropna()))
        if len(model_seeds) < 2:
            groups.append((model, model_seeds[0] if model_seeds else None, of_model, False))
            continue
        groups += [(model, s, of_model & seeds.eq(s), False) for s in model_seeds]
        groups.append((model, POOLED, of_model, True))
    several_runs = runs.nunique() > alignment["model"].nunique()
    groups.append((POOLED, POOLED if several_runs else None, pd.Series(True, index=alignment.index), several_runs))
    pairs = [(m, t) for m in measures for t in targets] + [
        (m, t) for m in alignment_measures if m in alignment for t in transfer_targets(alignment)
    ]
    final = (
        alignment["final"].astype(str).str.lower().eq("true")
        if "final" in alignment
        else alignment["step"].astype(str).eq("final")
    )
    rows = []
    for layer in sorted(alignment["layer"].unique()):
        for measure, target in pairs:
            for model, model_seed, of_group, clustered in groups:
                for finals in ("included", "excluded"):
                    mask = alignment["layer"].eq(layer) & of_group
                    if finals == "excluded":
                        mask &= ~final
                    subset = alignment[mask]
                    result = correlate(subset[measure], subset[target], resamples, seed,
                                       clusters=list(runs[mask]) if clustered else None)
                    rows.append(
                        {
                            "layer": layer,
                            "measure": measure,
                            "target": target,
                            "model": model,
                            "seed": model_seed,
                            "finals": finals,
                            **result,
                        }
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_correlations(
    alignment_path: str | os.PathLike, output: str | os.PathLike, resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Read alignment.tsv, write correlations.tsv and its provenance sidecar."""
    alignment = read_table(alignment_path)
    table = correlation_table(alignment, resamples=resamples, seed=seed)
    log.info(
        "%d correlations (%d with fewer than %d points)",
        len(table),
        int(table["note"].str.startswith("fewer").sum()),
        MIN_POINTS,
    )
    write_json(
        sidecar_path(output),
        provenance({"bootstrap": resamples, "seed": seed}, inputs={"alignment": str(alignment_path)}),
    )
    write_tsv(output, table)
    return table
