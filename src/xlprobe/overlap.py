"""Cross-lingual overlap of the probes' top-k neuron sets, with chance level and significance.

For one attribute and two treebanks A and B, each with an ordered list of selected neurons, the
overlap at k' is |A[:k'] ∩ B[:k']| / k'. Two random k'-subsets of D neurons share k'^2/D neurons on
average, so chance overlap is k'/D. Under that null the shared count is hypergeometric
(population D, k' "marked" neurons, k' draws), which gives an exact one-sided p-value; Holm's
step-down correction runs over the pairs of one attribute at each k' (cross-lingual and
within-language pairs are separate families).

Each pair names its two treebanks and their languages. A pair of two treebanks of one language (zh
and zh_cfl) is no cross-lingual pair: it is a within-language reference, a ceiling that the
cross-lingual overlap can be read against. Holm's families keep the two kinds apart, so adding a
reference treebank changes no cross-lingual p-value.

The random-neuron baseline is the column `random_overlap`: the mean overlap at k' of `random_draws`
seeded pairs of random ordered neuron lists (a Monte-Carlo check of the analytic chance level). It
depends only on D and k, so it is the same for every row with the same k'.

Probe replicates (probe.replicates = R): the overlap is computed within each replicate (replicate r
of treebank A against replicate r of B), one row per replicate, and Holm's families are per
replicate. The stability of the picks compares the replicates of one treebank: per attribute, the
mean over replicate pairs of |A_r[:k] ∩ A_s[:k]| / k, beside its chance level k/D (two random
k-subsets share k^2/D neurons on average).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from xlprobe.identity import point as result_point
from xlprobe.identity import replicate_attributes, with_identity
from xlprobe.integrity import read_sealed_json
from xlprobe.io import read_json, write_json, write_tsv
from xlprobe.provenance import checkpoints_of, provenance, sidecar_path

log = logging.getLogger(__name__)

COLUMNS = [
    "attribute",
    "treebank_a",
    "treebank_b",
    "language_a",
    "language_b",
    "k",
    "shared",
    "overlap",
    "chance",
    "p_value",
    "p_holm",
    "random_overlap",
]
STABILITY_COLUMNS = ["treebank", "language", "attribute", "k", "replicates", "stability", "stability_chance"]
RANDOM_DRAWS = 1000


def hypergeom_pvalue(shared: int | np.ndarray, width: int, k: int | np.ndarray) -> np.ndarray:
    """P(at least `shared` neurons in common) for two random k-subsets of `width` neurons."""
    return hypergeom.sf(np.asarray(shared) - 1, width, k, k)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def random_overlap_curve(width: int, k: int, draws: int = RANDOM_DRAWS, seed: int = 0) -> np.ndarray:
    """Mean overlap at k' = 1..k of `draws` pairs of random ordered neuron lists of length k."""
    rng = np.random.default_rng(seed)
    k = min(k, width)
    # Ordered random k-lists: the first k of a random permutation (argsort of uniform keys).
    a = np.argsort(rng.random((draws, width)), axis=1)[:, :k]
    b = np.argsort(rng.random((draws, width)), axis=1)[:, :k]
    # rank_b[d, n] = position of neuron n in list b (k if absent); then a neuron a[d, i] is shared
    # at k' iff i < k' and rank_b < k', i.e. max(i, rank_b) < k'.
    rank_b = np.full((draws, width), k)
    np.put_along_axis(rank_b, b, np.arange(k)[None, :].repeat(draws, 0), axis=1)
    first_shared_at = np.maximum(np.arange(k)[None, :], np.take_along_axis(rank_b, a, axis=1))
    counts = np.stack([(first_shared_at < kk).sum(axis=1) for kk in range(1, k + 1)], axis=1)
    return counts.mean(axis=0) / np.arange(1, k + 1)


def same_language(frame: pd.DataFrame) -> pd.Series:
    """Which overlap rows pair two treebanks of one language (the within-language reference)."""
    return frame["language_a"] == frame["language_b"]


def load_selections(
    probe_paths: Sequence[str | os.PathLike],
) -> tuple[int, dict[str, dict[str, list[int]]], dict[str, str]]:
    """Read probe JSONs: the common width D, per treebank attribute -> selected neurons (of probe
    replicate 0), and per treebank its language."""
    width, replicates, languages = load_replicate_selections(probe_paths)
    return width, replicates[0], languages


def load_replicate_selections(
    probe_paths: Sequence[str | os.PathLike],
) -> tuple[int, list[dict[str, dict[str, list[int]]]], dict[str, str]]:
    """Read probe JSONs: the common width D, per probe replicate per treebank attribute -> selected
    neurons, and per treebank its language. Every file must hold the same number of replicates.

    The treebank and its language come from the probe file (the probe rule writes both), never from
    the file's name.
    """
    width = None
    selections: list[dict[str, dict[str, list[int]]]] = []
    languages: dict[str, str] = {}
    for path in probe_paths:
        probe = read_json(path)
        missing = [key for key in ("dimension", "attributes", "treebank", "language") if key not in probe]
        if missing:
            raise ValueError(f"{path}: probe result lacks {missing} (a probe of an older xlprobe: rerun it)")
        dimension = int(probe["dimension"])
        if width is None:
            width = dimension
        elif dimension != width:
            raise ValueError(f"{path}: dimension {dimension} differs from {width} of {probe_paths[0]}")
        treebank = str(probe["treebank"])
        if treebank in languages:
            raise ValueError(f"{path}: treebank '{treebank}' already read from another probe file")
        records = replicate_attributes(probe)
        if not selections:
            selections = [{} for _ in records]
        elif len(records) != len(selections):
            raise ValueError(f"{path}: {len(records)} probe replicates, {probe_paths[0]} has {len(selections)}")
        for replicate, attributes in enumerate(records):
            chosen = {}
            for attribute, result in attributes.items():
                neurons = [int(n) for n in result.get("selected", [])]
                if len(set(neurons)) != len(neurons) or any(not 0 <= n < dimension for n in neurons):
                    raise ValueError(
                        f"{path}: attribute '{attribute}': selected neurons repeat or are outside 0..{dimension - 1}"
                    )
                if neurons:
                    chosen[attribute] = neurons
            selections[replicate][treebank] = chosen
        languages[treebank] = str(probe["language"])
    if width is None:
        raise ValueError("no probe files given")
    return width, selections, languages


def overlap_table(
    selections: Mapping[str, Mapping[str, Sequence[int]]],
    width: int,
    k: int,
    languages: Mapping[str, str],
    seed: int = 0,
    random_draws: int = RANDOM_DRAWS,
) -> pd.DataFrame:
    """Overlap rows for every attribute, treebank pair (in input order) and k' <= k (see COLUMNS).

    `languages` maps each treebank to its language.
    """
    treebanks = list(selections)
    unknown = [tb for tb in treebanks if tb not in languages]
    if unknown:
        raise ValueError(f"no language given for treebanks {unknown}")
    attributes = sorted({a for chosen in selections.values() for a in chosen})
    baseline = random_overlap_curve(width, k, random_draws, seed)
    rows = []
    for attribute in attributes:
        having = [tb for tb in treebanks if attribute in selections[tb]]
        for a, b in itertools.combinations(having, 2):
            sa, sb = list(selections[a][attribute]), list(selections[b][attribute])
            depth = min(k, len(sa), len(sb))
            if depth < k:
                log.warning("%s: %s/%s selected only %d of k=%d neurons", attribute, a, b, depth, k)
            for kk in range(1, depth + 1):
                shared = len(set(sa[:kk]) & set(sb[:kk]))
                rows.append((attribute, a, b, languages[a], languages[b], kk, shared))
    frame = pd.DataFrame(rows, columns=COLUMNS[: COLUMNS.index("shared") + 1])
    if frame.empty:  # no attribute kept in two treebanks: a valid, header-only table
        return pd.DataFrame(columns=COLUMNS)
    frame["overlap"] = frame["shared"] / frame["k"]
    frame["chance"] = frame["k"] / width
    frame["p_value"] = hypergeom_pvalue(frame["shared"].to_numpy(), width, frame["k"].to_numpy())
    family = [frame["attribute"], frame["k"], same_language(frame)]
    frame["p_holm"] = frame.groupby(family)["p_value"].transform(holm)
    frame["random_overlap"] = baseline[frame["k"].to_numpy() - 1]
    return frame[COLUMNS]


def stability_table(
    replicates: Sequence[Mapping[str, Mapping[str, Sequence[int]]]],
    width: int,
    k: int,
    languages: Mapping[str, str],
) -> pd.DataFrame:
    """Per treebank and attribute: the mean over pairs of probe replicates of the share of top-k picks
    they have in common (`stability`, NaN with one replicate) and its chance level k/D."""
    rows = []
    for treebank in replicates[0]:
        for attribute in replicates[0][treebank]:
            picks = [list(r[treebank].get(attribute, [])) for r in replicates]
            depth = min(k, *(len(p) for p in picks))
            shares = [len(set(a[:depth]) & set(b[:depth])) / depth for a, b in itertools.combinations(picks, 2)]
            rows.append((treebank, languages[treebank], attribute, depth, len(picks),
                         float(np.mean(shares)) if shares else np.nan, depth / width))
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def check_one_checkpoint(probe_paths: Sequence[str | os.PathLike]) -> list[dict]:
    """The one checkpoint record behind the probe files; an error naming each file's commit if several.

    One (model, step) has one set of weights: probes of two commits (a moving revision re-downloaded
    between jobs) would compare neurons of different networks.
    """
    checkpoints = checkpoints_of(probe_paths)
    if len(checkpoints) > 1:
        named = [
            f"{path}: commit {record.get('commit') or record.get('path') or record}"
            for path in probe_paths
            for record in [(read_json(path).get("provenance") or {}).get("checkpoint") or {}]
        ]
        raise ValueError(
            f"the probe files come from {len(checkpoints)} different checkpoints; rerun the older ones:\n  "
            + "\n  ".join(named)
        )
    return checkpoints


def point_of_probes(probe_paths: Sequence[str | os.PathLike], point: Mapping[str, Any] | None) -> dict[str, Any]:
    """The (model, seed, step, layer) of an overlap: `point` (the rule's) where given, else the
    probes' own; a probe that names another point is an error."""
    keys = ("model", "step", "layer")
    found = dict(point) if point else None
    for path in probe_paths:
        probe = read_json(path)
        own = {key: str(probe[key]) for key in keys if key in probe}
        if found is None and len(own) == len(keys):
            found = dict(own)
        elif found is not None and any(own[key] != str(found[key]) for key in own):
            raise ValueError(f"{path}: a probe of {own}, not of {found}")
    if not found:
        return {}
    if found.get("seed") is None:
        found["seed"] = next((read_json(path).get("seed") for path in probe_paths), None)
    return result_point(found["model"], found["step"], seed=found["seed"], layer=found["layer"])


def compute_overlap(
    probe_paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    k: int,
    seed: int = 0,
    random_draws: int = RANDOM_DRAWS,
    point: Mapping[str, Any] | None = None,
    stability_output: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Read one (model, seed, step, layer)'s probe files and write its overlap TSV (one block of rows
    per probe replicate), its provenance sidecar and, where `stability_output` is given, the
    stability of the picks per treebank and attribute.

    Both tables begin with the point's identity (model, seed, step, layer: `point`, the rule's, else
    the probes') as columns. The sidecar (`sidecar_path(output)`) names the point, the probe files and
    the checkpoint record their provenance carries; probes of different checkpoints, or of another
    point, are an error.
    """
    for path in probe_paths:
        read_sealed_json(path)  # a damaged probe file stops here, named with its rebuild command
    point = point_of_probes(probe_paths, point)
    checkpoints = check_one_checkpoint(probe_paths)
    width, replicates, languages = load_replicate_selections(probe_paths)
    frame = pd.concat(
        [
            overlap_table(selections, width, k, languages, seed=seed, random_draws=random_draws)
            .assign(replicate=replicate)
            for replicate, selections in enumerate(replicates)
        ],
        ignore_index=True,
    )
    frame = with_identity(frame[["replicate", *COLUMNS]], point)
    log.info("%d treebanks, width %d, %d probe replicates: %d overlap rows", len(languages), width,
             len(replicates), len(frame))
    if stability_output is not None:
        stability = with_identity(stability_table(replicates, width, k, languages), point)
        write_tsv(stability_output, stability)
    write_json(
        sidecar_path(output),
        provenance(
            {"k": k, "seed": seed, "random_draws": random_draws},
            point=point,
            inputs=[str(path) for path in probe_paths],
            checkpoints=checkpoints,
        ),
    )
    write_tsv(output, frame)
    return frame
