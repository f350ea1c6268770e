"""The overlap's uncertainty under probe replicates: its 95% interval and the significance of a pair.

Interval. One point's overlap is a mean over cells (attribute, probe replicate r, treebank pair p).
Two sources move it: the probe's own randomness (replicates) and which languages happen to be
compared (pairs). The interval resamples both at once, a two-way (pigeonhole) bootstrap for crossed
factors (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)): each resample draws
replicates and pairs with replacement, independently, and weighs cell (r, p) by the product of the
two counts; an attribute's overlap is the weighted mean of its cells, the point's the mean over
attributes. Percentiles 2.5 and 97.5 of 2,000 resamples give the interval. Resampling cells as if
independent would ignore that all cells of one replicate share a probe and all cells of one pair
share two languages. Each resample draws R - 1 of the R replicates and P - 1 of the P pairs (one
where there is one): the bootstrap variance of a mean of n draws from n units is (n - 1)/n of the
unbiased one, which costs a third of the variance at R = 3; n - 1 draws make it unbiased.
With one replicate there is no probe variance to read, and the interval is left empty (NaN): never
a zero-width interval.

Significance. Each replicate gives a hypergeometric p-value per pair. Replicates see the same data,
so their p-values are dependent; the quantile aggregation of Meinshausen, Meier & Bühlmann (2009,
JASA 104(488), "p-values for high-dimensional regression") with γ = 1/2, min(1, 2 × median over
replicates), is a valid p-value under any dependence. Holm's correction then runs over the pairs of
one attribute (cross-lingual and within-language pairs apart), as for a single replicate. With one
replicate the combined p-value is the replicate's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 2000
LEVEL = 0.95


def replicates_of(frame: pd.DataFrame) -> int:
    """How many probe replicates an overlap table holds (a table without the column holds one)."""
    return int(frame["replicate"].nunique()) if "replicate" in frame and len(frame) else 1


def overlap_cells(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(attributes, cells [attribute, replicate, pair]) of overlap rows at one k; NaN where an
    attribute has no row for a pair."""
    frame = frame.assign(replicate=frame.get("replicate", 0))
    pair = frame["treebank_a"] + "\t" + frame["treebank_b"]
    attributes = sorted(frame["attribute"].unique())
    replicates = sorted(frame["replicate"].unique())
    pairs = sorted(pair.unique())
    cells = np.full((len(attributes), len(replicates), len(pairs)), np.nan)
    cells[
        np.searchsorted(attributes, frame["attribute"]),
        np.searchsorted(replicates, frame["replicate"]),
        np.searchsorted(pairs, pair),
    ] = frame["overlap"].to_numpy(dtype=float)
    return attributes, cells


def pigeonhole_interval(
    cells: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(low, high) per attribute and (low, high) of the mean over attributes, from resampling the
    replicate and pair axes of `cells` [attribute, replicate, pair] (see the module docstring).

    NaN with fewer than 2 replicates."""
    n_attributes, n_replicates, n_pairs = cells.shape
    if n_replicates < 2 or n_pairs == 0 or n_attributes == 0:
        nan = np.full(n_attributes, np.nan)
        return nan, nan.copy(), np.nan, np.nan
    rng = np.random.default_rng(seed)
    w_replicates = rng.multinomial(n_replicates - 1, np.full(n_replicates, 1 / n_replicates), size=resamples)
    w_pairs = rng.multinomial(max(n_pairs - 1, 1), np.full(n_pairs, 1 / n_pairs), size=resamples)
    present = ~np.isnan(cells)
    values = np.where(present, cells, 0.0)
    total = np.einsum("br,arp,bp->ba", w_replicates, values, w_pairs)
    weight = np.einsum("br,arp,bp->ba", w_replicates, present.astype(float), w_pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_attribute = np.where(weight > 0, total / weight, np.nan)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(per_attribute, [tail, 100 - tail], axis=0)
    point = np.nanmean(per_attribute, axis=1)
    point_low, point_high = np.nanpercentile(point, [tail, 100 - tail])
    return low, high, float(point_low), float(point_high)


def combined_pvalues(frame: pd.DataFrame) -> pd.Series:
    """Per pair (attribute, treebank_a, treebank_b) of overlap rows at one k: its p-value combined
    over the replicates (min(1, 2 x median); the p-value itself with one replicate)."""
    keys = ["attribute", "treebank_a", "treebank_b"]
    grouped = frame.groupby(keys, sort=False)["p_value"]
    if replicates_of(frame) < 2:
        return grouped.first()
    return np.minimum(1.0, 2 * grouped.median())
