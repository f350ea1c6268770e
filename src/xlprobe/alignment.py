"""The alignment table: one row per (model, step, layer) with overlap, transfer and similarity.

Choices, stated once:
- Overlap is read at the largest k of each overlap file (the probe's k). Per attribute it is the mean
  over the cross-lingual treebank pairs (two languages) that both kept the attribute; the table's
  `overlap` is the macro mean over attributes (every attribute weighs the same, however many pairs
  it has). Pairs of two treebanks of one language are a within-language reference, reported apart
  (`within_language_overlap`, `n_within_pairs`), never in `overlap`. Chance is k/D, so
  `overlap_minus_chance` and `overlap_over_chance` are the macro mean minus, and divided by, chance.
- `share_significant` is the share of pairs whose Holm-corrected p-value is below `alpha`
  (macro mean over attributes in alignment.tsv); under probe replicates the p-value of a pair is
  combined over the replicates first (xlprobe.uncertainty).
- Probe replicates: `overlap` is the mean over replicates (and pairs), `overlap_ci_low` and
  `overlap_ci_high` its 95% interval (xlprobe.uncertainty; empty with one replicate), `stability` the
  mean share of top-k picks two replicates of one treebank have in common (mean over treebanks, then
  attributes) beside `stability_chance` (k/D).
- Identity: every row names its model, seed (empty for a model without `seeds`), step and layer, read
  from the overlap and stability tables' own columns; transfer, similarity and checkpoint checks
  are joined through the run's name (xlprobe.identity.run_name).
- Transfer: a task's main metric is the first of MAIN_METRICS present in its file (POS: `f1`,
  else `accuracy`; XNLI: `accuracy`); `transfer_<task>` is its mean over the configured target
  languages (all target rows where none are configured), `transfer_<task>_source` the source score.
- Similarity, one definition per column: `similarity` is the mean cosine over language pairs at the
  probed layer (NaN where that layer was not measured; the config check stops such a config), and
  `similarity_all_layers` the mean over every measured layer. Correlations name the column they use.
- Retrieval (xlprobe.similarity): `retrieval` is the mean over language pairs, at the probed layer
  and of the same pooling, of the share of parallel sentences whose translation is their nearest
  neighbour; `retrieval_null` the mean of its random-pairing null (1/n).
- Probe transfer (xlprobe.probe_transfer): per attribute the mean over ordered cross-lingual pairs,
  then the macro mean over attributes, of `accuracy` (`probe_transfer`), the permutation null's mean
  (`probe_transfer_null`), B's majority class (`probe_transfer_majority`), B's own readout
  (`probe_transfer_own`), the normalized score (`probe_transfer_normalized`, NaN pairs left out) and
  the share of pairs with p_value < `alpha` (`probe_transfer_share_significant`).
- Checkpoint checks (from the rule lm_loss's records, where given): `lm_loss` (nats per token on the
  treebanks' fixed sample, xlprobe.lm_loss), `lm_loss_parallel` (on the similarity section's parallel
  text, NaN without one), `suspect` (xlprobe.checks: the suspect rule over the model's steps, step order,
  `final` last) and `duplicate_of` (the first earlier step of the model with identical weight files,
  empty otherwise; xlprobe.checks). Each suspect and each duplicate is also a warning in the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xlprobe.checks import DEFAULT_MARGIN, duplicates, read_checks, suspects
from xlprobe.identity import FINAL, identity_of, run_name, step_value
from xlprobe.io import read_json, read_tsv, write_json, write_tsv
from xlprobe.overlap import COLUMNS as OVERLAP_FILE_COLUMNS
from xlprobe.overlap import holm, same_language
from xlprobe.provenance import provenance, sidecar_path
from xlprobe.uncertainty import combined_pvalues, overlap_cells, pigeonhole_interval, replicates_of

log = logging.getLogger(__name__)

MAIN_METRICS = ("f1", "accuracy")
# The overlap file's columns this stage reads (random_overlap is optional).
OVERLAP_COLUMNS = set(OVERLAP_FILE_COLUMNS) - {"random_overlap"}
TRANSFER_COLUMNS = {"language", "role", "metric", "value"}
SIMILARITY_COLUMNS = {"source", "target", "layer", "pooling", "cosine", "pairs"}
PROBE_TRANSFER_COLUMNS = {"attribute", "treebank_a", "treebank_b", "accuracy", "majority_accuracy",
                          "own_accuracy", "normalized", "null_mean", "p_value"}


# ----------------------------------------------------------------------------- steps and paths
def step_key(step: str | int) -> tuple[int, int]:
    """Sort key for checkpoint steps: integers in numeric order, then 'final'."""
    text = str(step)
    if text == FINAL:
        return (1, 0)
    if not text.isdigit():
        raise ValueError(f"step '{text}' is neither an integer nor '{FINAL}'")
    return (0, int(text))


def sort_points(frame: pd.DataFrame, model_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows ordered by model (given order, else first appearance), step (numeric, final last), layer."""
    if frame.empty:
        return frame
    models = list(model_order) if model_order is not None else list(dict.fromkeys(frame["model"]))
    rank = {m: i for i, m in enumerate(models)}
    keys = pd.DataFrame(
        {
            "_model": frame["model"].map(lambda m: rank.get(m, len(rank))),
            "_kind": frame["step"].map(lambda s: step_key(s)[0]),
            "_step": frame["step"].map(lambda s: step_key(s)[1]),
        },
        index=frame.index,
    )
    extra = [c for c in ("layer", "attribute") if c in frame]
    ordered = pd.concat([frame, keys], axis=1).sort_values(
        ["_model", "_kind", "_step", *extra], kind="stable"
    )
    return ordered.drop(columns=list(keys)).reset_index(drop=True)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read alignment.tsv or alignment_attributes.tsv with steps as int or 'final'."""
    frame = read_tsv(path, dtype={"duplicate_of": str})
    if "step" in frame:
        frame["step"] = frame["step"].map(step_value).astype(object)
    if "duplicate_of" in frame:  # a step or empty; the same type as `step`
        frame["duplicate_of"] = frame["duplicate_of"].map(lambda s: step_value(s) if isinstance(s, str) and s else "")
    return frame


def point_of(path: str | os.PathLike) -> dict[str, object]:
    """(model, step, layer) of an overlap table as its stage recorded it (`provenance.point`, from the
    rule's wildcards) in its sidecar: the identity of a table without rows, which has none of its own."""
    record_path = sidecar_path(path)
    if not os.path.exists(record_path):
        raise ValueError(f"{path}: no provenance record {record_path} beside it")
    record = read_json(record_path)
    point = (record.get("provenance", record) or {}).get("point")
    keys = ("model", "step", "layer")
    if not isinstance(point, dict) or any(key not in point for key in keys):
        raise ValueError(f"{record_path} names no point {keys} (made by an older xlprobe: rerun it)")
    return {"model": point["model"], "step": step_value(point["step"]), "layer": int(point["layer"])}


def identified_table(path: str | os.PathLike, columns: set[str], fields: tuple[str, ...]) -> tuple[tuple | None, pd.DataFrame]:
    """A per-point table and its identity (model, seed, step, *fields), read from its own identity
    columns (xlprobe.identity); no identity for a table without rows."""
    frame = _read_checked(path, columns | {"model", "seed", "step", *fields})
    found = identity_of(frame, fields)
    key = None if found is None else (found["model"], found["seed"], found["step"], *(found[f] for f in fields))
    return key, frame


def _read_checked(path: str | os.PathLike, columns: set[str]) -> pd.DataFrame:
    frame = read_tsv(path)
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (has {list(frame.columns)})")
    return frame


# ----------------------------------------------------------------------------- overlap
SUMMARY_COLUMNS = [
    "attribute",
    "k",
    "width",
    "n_pairs",
    "replicates",
    "overlap",
    "overlap_ci_low",
    "overlap_ci_high",
    "chance",
    "overlap_minus_chance",
    "overlap_over_chance",
    "random_overlap",
    "share_significant",
    "n_within_pairs",
    "within_language_overlap",
]


def significant_pairs(at_k: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per pair (attribute, treebank_a, treebank_b, languages) of overlap rows at one k, with
    `significant`: its Holm-corrected p-value, combined over probe replicates, below `alpha`."""
    keys = ["attribute", "treebank_a", "treebank_b", "language_a", "language_b"]
    pairs = at_k.drop_duplicates(keys[:3])[keys].reset_index(drop=True)
    if replicates_of(at_k) < 2:
        pairs["significant"] = (at_k.drop_duplicates(keys[:3])["p_holm"] < alpha).to_numpy()
        return pairs
    combined = combined_pvalues(at_k).reindex(pd.MultiIndex.from_frame(pairs[keys[:3]])).to_numpy()
    pairs["p_combined"] = combined
    pairs["p_holm"] = pairs.groupby([pairs["attribute"], same_language(pairs)])["p_combined"].transform(holm)
    pairs["significant"] = pairs["p_holm"] < alpha
    return pairs


def summarize_overlap(frame: pd.DataFrame, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per attribute at the largest k: mean overlap over cross-lingual pairs (and probe replicates)
    with its interval, chance, pairs, share significant; and apart, the mean over pairs of two
    treebanks of one language (NaN where none). `frame.attrs["overlap_ci"]`: the (low, high) of the
    macro mean over attributes."""
    if frame.empty:
        summary = pd.DataFrame(columns=SUMMARY_COLUMNS)
        summary.attrs["overlap_ci"] = (np.nan, np.nan)
        return summary
    k = int(frame["k"].max())
    at_k = frame[frame["k"] == k].copy()
    replicates = replicates_of(frame)
    dropped = frame[["attribute", "treebank_a", "treebank_b"]].drop_duplicates().shape[0] - len(at_k) // replicates
    if dropped:
        log.warning("%d pairs have no row at k=%d (fewer neurons selected) and are left out", dropped, k)
    if "random_overlap" not in at_k:
        at_k["random_overlap"] = np.nan
    within = same_language(at_k)
    attributes = pd.Index(sorted(at_k["attribute"].unique()), name="attribute")
    pairs = significant_pairs(at_k, alpha)
    summary = (
        at_k[~within]
        .groupby("attribute", sort=True)
        .agg(overlap=("overlap", "mean"), random_overlap=("random_overlap", "mean"))
        .reindex(attributes)
    )
    cross_pairs = pairs[~same_language(pairs)].groupby("attribute")["significant"]
    summary["n_pairs"] = cross_pairs.size().reindex(attributes)
    summary["share_significant"] = cross_pairs.mean().reindex(attributes).astype(float)
    summary["replicates"] = replicates
    names, cells = overlap_cells(at_k[~within])
    low, high, point_low, point_high = pigeonhole_interval(cells, seed=seed)
    summary["overlap_ci_low"] = pd.Series(low, index=names).reindex(attributes)
    summary["overlap_ci_high"] = pd.Series(high, index=names).reindex(attributes)
    reference = at_k[within].groupby("attribute")["overlap"].agg(["size", "mean"]).reindex(attributes)
    reference["size"] = reference["size"] // replicates
    summary["n_pairs"] = summary["n_pairs"].fillna(0).astype(int)
    summary["n_within_pairs"] = reference["size"].fillna(0).astype(int)
    summary["within_language_overlap"] = reference["mean"]
    summary = summary.reset_index()
    summary["k"] = k
    summary["chance"] = at_k["chance"].iloc[0]
    summary["width"] = round(k / summary["chance"].iloc[0])
    summary["overlap_minus_chance"] = summary["overlap"] - summary["chance"]
    summary["overlap_over_chance"] = summary["overlap"] / summary["chance"]
    summary = summary[SUMMARY_COLUMNS]
    summary.attrs["overlap_ci"] = (point_low, point_high)
    return summary


def overlap_by_k(frame: pd.DataFrame) -> pd.DataFrame:
    """Per k' <= k (index): `overlap` as summarize_overlap takes it (cross-lingual pairs, mean per
    attribute, macro mean over attributes), `chance` and `random_overlap`."""
    cross = frame[~same_language(frame)]
    curve = cross.groupby(["k", "attribute"])["overlap"].mean().groupby("k").mean()
    columns = [c for c in ("chance", "random_overlap") if c in frame]
    return frame.groupby("k")[columns].first().assign(overlap=curve)


# ----------------------------------------------------------------------------- transfer, similarity
def summarise_transfer(
    frame: pd.DataFrame, targets: Sequence[str] | None, path: str | os.PathLike = "?"
) -> dict:
    """Main metric's mean over the target languages, the source score and the metric's name."""
    metric = next((m for m in MAIN_METRICS if m in set(frame["metric"])), None)
    if metric is None:
        raise ValueError(
            f"{path}: none of the metrics {list(MAIN_METRICS)} (has {sorted(set(frame['metric']))})"
        )
    rows = frame[frame["metric"] == metric]
    target_rows = rows[rows["role"] == "target"].set_index("language")["value"]
    if targets:
        missing = [t for t in targets if t not in target_rows.index]
        if missing:
            raise ValueError(f"{path}: no '{metric}' for configured target languages {missing}")
        target_rows = target_rows.loc[list(targets)]
    source = rows.loc[rows["role"] == "source", "value"]
    return {
        "target": float(target_rows.mean()) if len(target_rows) else np.nan,
        "source": float(source.mean()) if len(source) else np.nan,
        "metric": metric,
    }


# The paper's sentence vector: the last token's hidden state.
SIMILARITY_POOLING = "last"


def one_pooling(frame: pd.DataFrame, pooling: str = SIMILARITY_POOLING) -> pd.DataFrame:
    """The rows of one sentence pooling (the paper's, where present): cosines of two poolings never mix."""
    poolings = list(dict.fromkeys(frame["pooling"]))
    chosen = pooling if pooling in poolings else (poolings[0] if poolings else pooling)
    if chosen != pooling:
        log.warning("no '%s' pooling in a similarity file; using '%s'", pooling, chosen)
    return frame[frame["pooling"] == chosen]


def similarity_by_layer(frame: pd.DataFrame) -> pd.Series:
    """Mean cosine over language pairs per measured layer, of the paper's pooling."""
    return one_pooling(frame).groupby("layer")["cosine"].mean()


def similarity_scores(frame: pd.DataFrame, layer: int) -> dict[str, float]:
    """Mean cosine over language pairs at `layer` (`similarity`, NaN where not measured) and over
    every measured layer (`similarity_all_layers`), of the paper's pooling; retrieval and its null at
    `layer` where the file has those columns."""
    curve = similarity_by_layer(frame)
    at_layer = one_pooling(frame)
    at_layer = at_layer[at_layer["layer"] == layer]
    return {
        "similarity": float(curve[layer]) if layer in curve.index else np.nan,
        "similarity_all_layers": float(curve.mean()) if len(curve) else np.nan,
        **{column: float(at_layer[column].mean()) if len(at_layer) else np.nan
           for column in ("retrieval", "retrieval_null") if column in frame},
    }


PROBE_TRANSFER_MEASURES = {
    "probe_transfer": "accuracy",
    "probe_transfer_null": "null_mean",
    "probe_transfer_majority": "majority_accuracy",
    "probe_transfer_own": "own_accuracy",
    "probe_transfer_normalized": "normalized",
    "probe_transfer_share_significant": "significant",
}


def probe_transfer_scores(frame: pd.DataFrame, alpha: float = 0.05) -> dict[str, float]:
    """Per attribute the mean over ordered pairs, then the macro mean over attributes (see the module)."""
    if frame.empty:
        return {column: np.nan for column in PROBE_TRANSFER_MEASURES} | {"probe_transfer_pairs": 0}
    frame = frame.assign(significant=frame["p_value"] < alpha)
    per_attribute = frame.groupby("attribute")[list(PROBE_TRANSFER_MEASURES.values())].mean()
    return {column: float(per_attribute[source].mean()) for column, source in PROBE_TRANSFER_MEASURES.items()} | {
        "probe_transfer_pairs": len(frame)
    }


# ----------------------------------------------------------------------------- the table
def checkpoint_checks(check_paths: Iterable[str | os.PathLike], margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """One row per (model, seed, step) of the lm_loss records: `lm_loss` (the verdict's sample, xlprobe.lm_loss;
    inf where it is not a finite number), `lm_loss_parallel` (the parallel text's, where configured),
    `duplicate_of` (the first earlier step with identical weights, else empty) and `suspect`; a warning
    for each duplicate and suspect."""
    records = read_checks(list(check_paths))
    frame = pd.DataFrame(
        [{"model": r["model"], "seed": _seed(r.get("seed")), "step": step_value(r["step"]), "lm_loss": record_loss(r),
          "lm_loss_parallel": record_loss((r.get("samples") or {}).get("parallel") or {"lm_loss": None}),
          "uniform_loss": r.get("uniform_loss"), "weights": r["weights"]}
         for r in records],
        columns=["model", "seed", "step", "lm_loss", "lm_loss_parallel", "uniform_loss", "weights"],
    )
    # a series is one pre-training run: a model, or one seed of it
    frame["_run"] = [run_name(m, _seed(seed)) for m, seed in zip(frame["model"], frame["seed"])]
    frame = sort_points(frame)
    twins = duplicates(frame[["_run", "step", "weights"]].itertuples(index=False))
    frame["duplicate_of"] = [str(twins.get((r, s), "")) for r, s in zip(frame["_run"], frame["step"])]
    reasons = {}
    for run, rows in frame.groupby("_run", sort=False):
        uniform = rows["uniform_loss"].astype(float).max()  # one vocabulary per model; NaN in older records
        flagged = suspects(list(zip(rows["step"], rows["lm_loss"])), margin, None if np.isnan(uniform) else uniform)
        reasons.update({(run, step): reason for step, reason in flagged.items()})
    frame["suspect"] = [(r, s) in reasons for r, s in zip(frame["_run"], frame["step"])]
    for run, step, twin in frame.loc[frame["duplicate_of"] != "", ["_run", "step", "duplicate_of"]].itertuples(index=False):
        log.warning("%s: step %s holds the same weights as step %s (identical weight files): a duplicate, "
                    "not a new checkpoint", run, step, twin)
    for (run, step), reason in reasons.items():
        log.warning("%s: step %s is suspect: %s (margin %.2f nats); a broken checkpoint?", run, step, reason, margin)
    return frame.drop(columns=["weights", "uniform_loss", "_run"])


def record_loss(record: Mapping[str, Any]) -> float:
    """The loss of an lm_loss record (or of one of its samples): NaN where none, inf where not finite."""
    if record.get("non_finite"):
        return np.inf
    return np.nan if record.get("lm_loss") is None else float(record["lm_loss"])


def build_alignment(
    overlap_paths: Iterable[str | os.PathLike],
    transfer_paths: Iterable[str | os.PathLike] = (),
    similarity_paths: Iterable[str | os.PathLike] = (),
    targets: Mapping[str, Sequence[str] | None] | None = None,
    alpha: float = 0.05,
    check_paths: Iterable[str | os.PathLike] = (),
    margin: float = DEFAULT_MARGIN,
    stability_paths: Iterable[str | os.PathLike] = (),
    seed: int = 0,
    probe_transfer_paths: Iterable[str | os.PathLike] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(alignment, per-attribute table) from the overlap (and stability), transfer and similarity
    files, the checkpoint checks and the probe-transfer files where given. `seed` seeds the overlap
    intervals' resampling."""
    targets = dict(targets or {})
    attribute_rows, point_rows, models = [], [], []
    stability = stability_by_attribute(stability_paths)
    for path in overlap_paths:
        frame = _read_checked(path, OVERLAP_COLUMNS)
        point = overlap_point(path, frame)
        models.append(point["model"])
        summary = summarize_overlap(frame, alpha, seed)
        low, high = summary.attrs["overlap_ci"]
        summary = summary.merge(stability.get(_key(point), STABILITY_EMPTY), on="attribute", how="left")
        attribute_rows.append(summary.assign(**point))
        cross = summary[summary["n_pairs"] > 0]
        macro = cross[
            ["overlap", "overlap_minus_chance", "overlap_over_chance", "random_overlap", "share_significant",
             "stability", "stability_chance"]
        ].mean()
        point_rows.append(
            {
                **point,
                "k": summary["k"].iloc[0] if len(summary) else np.nan,
                "width": summary["width"].iloc[0] if len(summary) else np.nan,
                "chance": summary["chance"].iloc[0] if len(summary) else np.nan,
                "n_attributes": len(cross),
                "n_pairs": int(summary["n_pairs"].sum()),
                "replicates": replicates_of(frame),
                **macro.to_dict(),
                "overlap_ci_low": low,
                "overlap_ci_high": high,
                # The within-language reference, macro mean over the attributes that have such pairs.
                "n_within_pairs": int(summary["n_within_pairs"].sum()),
                "within_language_overlap": summary["within_language_overlap"].mean(),
            }
        )
    if not point_rows:
        raise ValueError("no overlap files given")
    alignment = pd.DataFrame(point_rows)
    runs = [run_name(m, _seed(s)) for m, s in zip(alignment["model"], alignment["seed"])]

    points = [(m, _seed(seed), s) for m, seed, s in zip(alignment["model"], alignment["seed"], alignment["step"])]

    transfer = {}
    for path in transfer_paths:
        key, frame = identified_table(path, TRANSFER_COLUMNS, ("task",))
        if key is not None:
            transfer[key] = summarise_transfer(frame, targets.get(key[-1]), path)
    for task in sorted({key[-1] for key in transfer}):
        found = [transfer.get((*point, task)) for point in points]
        alignment[f"transfer_{task}"] = [f["target"] if f else np.nan for f in found]
        alignment[f"transfer_{task}_source"] = [f["source"] if f else np.nan for f in found]
        alignment[f"transfer_{task}_metric"] = [f["metric"] if f else "" for f in found]

    similarity_frames = {}
    for path in similarity_paths:
        key, frame = identified_table(path, SIMILARITY_COLUMNS, ())
        if key is not None:
            similarity_frames[key] = frame
    if similarity_frames:
        missing = {"similarity": np.nan, "similarity_all_layers": np.nan}
        scores = pd.DataFrame(
            [
                similarity_scores(similarity_frames[point], layer) if point in similarity_frames else missing
                for point, layer in zip(points, alignment["layer"])
            ],
            index=alignment.index,
        )
        unmeasured = alignment.loc[scores["similarity"].isna() & scores["similarity_all_layers"].notna()]
        for m, s, layer in unmeasured[["model", "step", "layer"]].itertuples(index=False):
            log.warning("similarity of %s step %s: layer %d not measured; `similarity` left empty", m, s, layer)
        alignment = pd.concat([alignment, scores], axis=1)

    readouts = {}
    for path in probe_transfer_paths:
        key, frame = identified_table(path, PROBE_TRANSFER_COLUMNS, ("layer",))
        if key is not None:  # a table without rows: no attribute shared by two treebanks, nothing read out
            readouts[key] = probe_transfer_scores(frame, alpha)
    if readouts:
        missing = probe_transfer_scores(pd.DataFrame())
        scores = pd.DataFrame([readouts.get((*point, layer), missing) for point, layer in zip(points, alignment["layer"])],
                              index=alignment.index)
        alignment = pd.concat([alignment, scores], axis=1)

    check_paths = list(check_paths)
    if check_paths:
        checks = checkpoint_checks(check_paths, margin)
        checks = checks.assign(_run=[run_name(m, _seed(seed)) for m, seed in zip(checks["model"], checks["seed"])])
        alignment = (
            alignment.assign(_run=runs)
            .merge(checks.drop(columns=["model", "seed"]), on=["_run", "step"], how="left", validate="many_to_one")
            .drop(columns="_run")
        )
        alignment["duplicate_of"] = alignment["duplicate_of"].fillna("")
        alignment["suspect"] = alignment["suspect"].fillna(False).astype(bool)

    alignment.insert(1, "seed", alignment.pop("seed"))
    alignment.insert(3, "final", alignment["step"].map(lambda s: str(s) == FINAL))
    order = list(dict.fromkeys(models))
    attributes = pd.concat(attribute_rows, ignore_index=True) if attribute_rows else pd.DataFrame()
    if not attributes.empty:
        attributes.insert(0, "model", attributes.pop("model"))
        attributes.insert(1, "seed", attributes.pop("seed").astype("Int64"))
        attributes.insert(2, "step", attributes.pop("step"))
        attributes.insert(3, "final", attributes["step"].map(lambda s: str(s) == FINAL))
        attributes.insert(4, "layer", attributes.pop("layer"))
    for column in ("k", "width", "seed"):
        alignment[column] = alignment[column].astype("Int64")
    return sort_points(alignment, order), sort_points(attributes, order)


STABILITY_EMPTY = pd.DataFrame(columns=["attribute", "stability", "stability_chance"])


def _seed(value) -> int | None:
    """A seed as read from a table: None where empty."""
    return None if value is None or pd.isna(value) else int(value)


def _key(point: Mapping) -> tuple:
    return (point["model"], _seed(point.get("seed")), step_value(point["step"]), int(point["layer"]))


def overlap_point(path: str | os.PathLike, frame: pd.DataFrame) -> dict[str, object]:
    """The (model, seed, step, layer) of an overlap table: its own identity columns; the provenance
    record beside it only for a table without rows (nothing to read them from)."""
    if len(frame) and {"model", "step", "layer"} <= set(frame.columns):
        first = frame.iloc[0]
        return {"model": str(first["model"]), "seed": _seed(first.get("seed")),
                "step": step_value(first["step"]), "layer": int(first["layer"])}
    point = point_of(path)
    return {"model": point["model"], "seed": None, "step": point["step"], "layer": point["layer"], **point}


def stability_by_attribute(paths: Iterable[str | os.PathLike]) -> dict[tuple, pd.DataFrame]:
    """Per point (model, seed, step, layer): attribute -> mean stability over its treebanks and chance."""
    found = {}
    for path in paths:
        frame = _read_checked(path, {"model", "step", "layer", "attribute", "stability", "stability_chance"})
        if frame.empty:
            continue
        per_attribute = frame.groupby("attribute", as_index=False)[["stability", "stability_chance"]].mean()
        found[_key(frame.iloc[0])] = per_attribute
    return found


def write_alignment_table(
    overlap_paths: Iterable[str | os.PathLike],
    transfer_paths: Iterable[str | os.PathLike],
    similarity_paths: Iterable[str | os.PathLike],
    alignment_out: str | os.PathLike,
    attributes_out: str | os.PathLike,
    targets: Mapping[str, Sequence[str] | None] | None = None,
    alpha: float = 0.05,
    check_paths: Iterable[str | os.PathLike] = (),
    margin: float = DEFAULT_MARGIN,
    stability_paths: Iterable[str | os.PathLike] = (),
    seed: int = 0,
    probe_transfer_paths: Iterable[str | os.PathLike] = (),
) -> pd.DataFrame:
    """Build the alignment tables and write both TSVs, each with its provenance sidecar.

    The sidecars list the input files; the checkpoints are in the inputs' own sidecars.
    """
    overlap_paths, transfer_paths, similarity_paths, check_paths, probe_transfer_paths = (
        [str(p) for p in paths]
        for paths in (overlap_paths, transfer_paths, similarity_paths, check_paths, probe_transfer_paths)
    )
    alignment, attributes = build_alignment(overlap_paths, transfer_paths, similarity_paths, targets, alpha,
                                            check_paths, margin, [str(p) for p in stability_paths], seed,
                                            probe_transfer_paths)
    log.info("alignment table: %d points, %d attribute rows", len(alignment), len(attributes))
    record = provenance(
        {"alpha": alpha, "targets": dict(targets or {}), "suspect_margin": margin, "seed": seed},
        inputs={"overlap": overlap_paths, "transfer": transfer_paths, "similarity": similarity_paths,
                "lm_loss": check_paths,
                "stability": [str(p) for p in stability_paths], "probe_transfer": probe_transfer_paths},
    )
    for out in (alignment_out, attributes_out):
        write_json(sidecar_path(out), record)
    write_tsv(alignment_out, alignment)
    write_tsv(attributes_out, attributes)
    return alignment
