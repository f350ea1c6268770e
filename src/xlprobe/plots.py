"""The paper's figures from the alignment, correlation, overlap and similarity files.

One style for all (seaborn "whitegrid", "paper" context), models in the colour-blind-safe seaborn
"colorblind" palette, checkpoints in the sequential "viridis" map. Checkpoint axes are ordinal:
the steps of all models in numeric order, `final` last, evenly spaced (not to scale), so that early
and late checkpoints stay readable side by side. Figures are drawn for one layer (by default the
deepest probed layer, as the paper probes one); every figure is saved as PNG and PDF.

Pre-training seeds: a line is the mean over a model's seeds, its shaded band the range over them;
with one seed, error bars give the overlap's replicate interval (overlap_ci_low/high).
"""

from __future__ import annotations

import graphlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, PercentFormatter
from scipy.stats import hypergeom

from xlprobe.alignment import (
    FINAL,
    SIMILARITY_COLUMNS,
    identified_table,
    overlap_by_k,
    overlap_point,
    read_table,
    significant_pairs,
    similarity_by_layer,
    sort_points,
    step_key,
    step_value,
)
from xlprobe.correlation import MEASURES, correlation_targets
from xlprobe.figures import FIGURE_NAMES
from xlprobe.io import atomic_path, read_tsv
from xlprobe.overlap import same_language

log = logging.getLogger(__name__)

STYLE = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.15),
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "legend.frameon": False,
}
MEASURE_LABELS = {
    "overlap": "overlap (share of top-k neurons shared)",
    "overlap_minus_chance": "overlap − chance (k/D)",
    "overlap_over_chance": "overlap / chance (k/D)",
}
PERCENT_MEASURES = {"overlap", "overlap_minus_chance"}
METRIC_LABELS = {"f1": "F1", "accuracy": "accuracy"}


# ----------------------------------------------------------------------------- helpers
def model_colours(models: Sequence[str]) -> dict[str, tuple]:
    return dict(zip(models, sns.color_palette("colorblind", n_colors=max(len(models), 1))))


def step_label(step: int | str) -> str:
    step = step_value(step)
    if step == FINAL:
        return FINAL
    return f"{step // 1000}k" if step >= 1000 and step % 1000 == 0 else str(step)


def ordered_steps(steps: Iterable) -> list:
    return sorted({step_value(s) for s in steps}, key=step_key)


STEP_AXIS_LABEL = "checkpoint (pre-training step; evenly spaced, not to scale)"


def _step_axis(ax, steps: Sequence, xlabel: str = STEP_AXIS_LABEL) -> dict:
    """Ordinal x axis over `steps`; returns step -> position."""
    position = {s: i for i, s in enumerate(steps)}
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([step_label(s) for s in steps], rotation=45 if len(steps) > 6 else 0)
    ax.set_xlim(-0.4, len(steps) - 0.6)
    ax.set_xlabel(xlabel)
    return position


def _grid(n_panels: int, ncols: int, width: float = 3.4, height: float = 2.7, **kwargs):
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _empty_figure(message: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _pick_layer(frame: pd.DataFrame, layer: int | None) -> tuple[pd.DataFrame, int | None]:
    if frame.empty or "layer" not in frame:
        return frame, layer
    layer = int(frame["layer"].max()) if layer is None else layer
    return frame[frame["layer"] == layer], layer


def _legend_below(fig, handles, labels, ncol: int | None = None):
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol or min(len(labels), 4)
    )


def flagged_points(alignment: pd.DataFrame) -> tuple[set, set]:
    """((model, step) of duplicates, (model, step) of suspects) from the checkpoint-check columns."""
    duplicate, suspect = set(), set()
    if "duplicate_of" in alignment:
        rows = alignment[alignment["duplicate_of"].fillna("").astype(str) != ""]
        duplicate = set(zip(rows["model"], rows["step"]))
    if "suspect" in alignment:
        rows = alignment[alignment["suspect"].astype(str).str.lower().eq("true")]
        suspect = set(zip(rows["model"], rows["step"]))
    return duplicate, suspect


def _mark_checks(ax, model: str, steps: Sequence, x: Sequence, y: Sequence, flags: tuple[set, set]) -> None:
    """Ring the duplicate points (grey square) and cross the suspect ones (red) of one model's line."""
    duplicate, suspect = flags
    for step, xi, yi in zip(steps, x, y):
        if (model, step) in duplicate:
            ax.scatter([xi], [yi], s=140, marker="s", facecolor="none", edgecolor="grey", linewidth=1.5, zorder=3)
        if (model, step) in suspect:
            ax.scatter([xi], [yi], s=110, marker="X", color="red", zorder=4)


def _check_handles(flags: tuple[set, set]) -> tuple[list, list]:
    """Legend entries for the marks that a figure shows."""
    handles, labels = [], []
    if flags[0]:
        handles.append(Line2D([], [], marker="s", markerfacecolor="none", markeredgecolor="grey", linestyle=""))
        labels.append("duplicate weights (same as an earlier step)")
    if flags[1]:
        handles.append(Line2D([], [], marker="X", color="red", linestyle=""))
        labels.append("suspect: LM loss far above the earlier steps'")
    return handles, labels


def save_figure(fig, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    """Write the figure as PNG and PDF, each atomically."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt)
    plt.close(fig)


def overlap_frames(paths: Iterable[str | os.PathLike]) -> dict[tuple, pd.DataFrame]:
    """Overlap TSVs keyed by (model, step, layer), read with their identity columns; the files of a
    model's several seeds concatenated (each row keeps its seed and replicate)."""
    frames: dict[tuple, list[pd.DataFrame]] = {}
    for path in paths:
        frame = read_tsv(path)
        point = overlap_point(path, frame)
        frames.setdefault((point["model"], point["step"], point["layer"]), []).append(frame)
    return {key: pd.concat(found, ignore_index=True) for key, found in frames.items()}


def mean_over_seeds(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per (model, step, layer): the mean of `columns` over seeds, and `<column>_seed_low/high` (their
    range over seeds; NaN with one seed). Other columns: their first value."""
    columns = [c for c in columns if c != "seed"]
    if "seed" not in frame or frame["seed"].nunique() < 2:
        return frame.assign(**{f"{c}_seed_{e}": np.nan for c in columns if c in frame for e in ("low", "high")})
    keys = ["model", "step", "layer", *(["attribute"] if "attribute" in frame else [])]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    present = [c for c in columns if c in frame]
    out = grouped.first().join(grouped[present].mean(), rsuffix="_mean")
    for column in present:
        out[column] = out.pop(f"{column}_mean")
        out[f"{column}_seed_low"] = grouped[column].min()
        out[f"{column}_seed_high"] = grouped[column].max()
    return out.reset_index()


def _seed_band(ax, x, rows, column, colour, scale=1.0) -> None:
    """The across-seed range of `column` as a band; the replicate interval as error bars with one seed."""
    low, high = f"{column}_seed_low", f"{column}_seed_high"
    if low in rows and rows[low].notna().any():
        ax.fill_between(x, rows[low] / scale, rows[high] / scale, color=colour, alpha=0.2, linewidth=0)
    elif column == "overlap" and "overlap_ci_low" in rows and rows["overlap_ci_low"].notna().any():
        y = rows["overlap"] / scale
        ax.errorbar(x, y, yerr=[y - rows["overlap_ci_low"] / scale, rows["overlap_ci_high"] / scale - y],
                    fmt="none", ecolor=colour, capsize=3, linewidth=1)


def similarity_frames(paths: Iterable[str | os.PathLike]) -> dict[tuple, pd.DataFrame]:
    """Similarity TSVs keyed by (model, step) from their identity columns; a model's seeds concatenated."""
    found: dict[tuple, list[pd.DataFrame]] = {}
    for path in paths:
        key, frame = identified_table(path, SIMILARITY_COLUMNS, ())
        if key is not None:
            model, _, step = key
            found.setdefault((model, step), []).append(frame)
    return {key: pd.concat(frames, ignore_index=True) for key, frames in found.items()}


def treebank_order(frames: Iterable[pd.DataFrame]) -> list[str]:
    """Treebanks of overlap files in config order: treebank_a precedes treebank_b in every pair."""
    order = graphlib.TopologicalSorter()
    for frame in frames:
        for a, b in frame[["treebank_a", "treebank_b"]].drop_duplicates().itertuples(index=False):
            order.add(b, a)
    return list(order.static_order())


def _last_points(frames: Mapping[tuple, pd.DataFrame], layer: int) -> dict[str, tuple]:
    """Per model, the key of its last checkpoint at `layer`."""
    last: dict[str, tuple] = {}
    for key in frames:
        model, step, at = key
        if at == layer and (model not in last or step_key(step) > step_key(last[model][1])):
            last[model] = key
    return last


# ----------------------------------------------------------------------------- figures
def plot_overlap_vs_step(alignment: pd.DataFrame, attributes: pd.DataFrame, layer: int | None = None):
    """Mean overlap and each attribute's overlap per checkpoint, one line per model, chance dashed;
    the band over seeds, or the replicate interval (see the module docstring)."""
    alignment, layer = _pick_layer(alignment, layer)
    attributes, _ = _pick_layer(attributes, layer)
    alignment = mean_over_seeds(alignment, ["overlap", "chance"])
    attributes = mean_over_seeds(attributes, ["overlap", "chance"]) if not attributes.empty else attributes
    if alignment["overlap"].isna().all():
        return _empty_figure("no attribute was kept in two languages: no overlap to show")
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    steps = ordered_steps(alignment["step"])
    names = sorted(attributes["attribute"].unique()) if not attributes.empty else []
    pairs = attributes.groupby("attribute")["n_pairs"].max() if names else {}
    panels = [("mean over attributes", alignment)] + [
        (
            f"{name} ({pairs[name]} pair{'s' if pairs[name] != 1 else ''})",
            attributes[attributes["attribute"] == name],
        )
        for name in names
    ]
    flags = flagged_points(alignment)
    fig, axes = _grid(len(panels), ncols=4, sharey=True)
    for ax, (title, frame) in zip(axes, panels):
        position = _step_axis(ax, steps, xlabel="")
        for model in models:
            rows = frame[frame["model"] == model].sort_values("step", key=lambda s: s.map(step_key))
            if rows.empty:
                continue
            x = rows["step"].map(position)
            ax.plot(x, rows["overlap"], marker="o", color=colours[model], label=model)
            _seed_band(ax, x, rows, "overlap", colours[model])
            ax.plot(x, rows["chance"], linestyle="--", color=colours[model], linewidth=1)
            _mark_checks(ax, model, rows["step"], x, rows["overlap"], flags)
        ax.set_title(title, fontweight="bold" if frame is alignment else "normal")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    fig.supxlabel(STEP_AXIS_LABEL, fontsize="medium")
    for ax in axes[:: min(4, len(axes))]:
        ax.set_ylabel("overlap of top-k neurons")
    axes[0].set_ylim(bottom=0)
    handles = [Line2D([], [], color=colours[m], marker="o") for m in models]
    handles.append(Line2D([], [], color="grey", linestyle="--"))
    marks, mark_labels = _check_handles(flags)
    spread, spread_labels = _spread_handles(alignment, "overlap")
    _legend_below(fig, handles + spread + marks, [*models, "chance (k/D), per model", *spread_labels, *mark_labels])
    k = alignment["k"].dropna()
    fig.suptitle(f"Cross-lingual neuron overlap (layer {layer}, k = {int(k.iloc[0]) if len(k) else '?'})")
    fig.tight_layout()
    return fig


def _transfer_tasks(alignment: pd.DataFrame) -> list[str]:
    return [c for c in correlation_targets(alignment) if c.startswith("transfer_")]


def plot_transfer_vs_step(alignment: pd.DataFrame, layer: int | None = None):
    """Zero-shot transfer (mean over targets, solid) and source-language score (dotted) per checkpoint."""
    alignment, _ = _pick_layer(alignment, layer)
    tasks = _transfer_tasks(alignment)
    if not tasks:
        return _empty_figure("no transfer task configured")
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    steps = ordered_steps(alignment["step"])
    flags = flagged_points(alignment)
    fig, axes = _grid(len(tasks), ncols=3, width=5.2 if len(tasks) == 1 else 4.4, height=3.4)
    for ax, column in zip(axes, tasks):
        position = _step_axis(ax, steps)
        for model in models:
            rows = alignment[alignment["model"] == model]
            x = rows["step"].map(position)
            ax.plot(x, rows[column], marker="o", color=colours[model])
            _mark_checks(ax, model, rows["step"], x, rows[column], flags)
            if f"{column}_source" in rows:
                ax.plot(x, rows[f"{column}_source"], linestyle=":", marker=".", color=colours[model])
        metric = next((m for m in alignment.get(f"{column}_metric", pd.Series(dtype=str)) if m), "score")
        ax.set_title(column.removeprefix("transfer_"))
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    handles = [Line2D([], [], color=colours[m], marker="o") for m in models]
    handles += [
        Line2D([], [], color="grey", marker="o"),
        Line2D([], [], color="grey", linestyle=":", marker="."),
    ]
    marks, mark_labels = _check_handles(flags)
    _legend_below(
        fig,
        handles + marks,
        [*models, "mean over target languages (zero-shot)", "source language", *mark_labels],
        ncol=min(len(models) + 2, 3),
    )
    fig.suptitle("Zero-shot transfer after fine-tuning on the source language")
    fig.tight_layout()
    return fig


def plot_overlap_vs_transfer(
    alignment: pd.DataFrame,
    correlations: pd.DataFrame | None = None,
    layer: int | None = None,
    measures: Sequence[str] = MEASURES[:2],
):
    """Overlap (raw and minus chance) against each transfer task; per-model fits, r in the legend."""
    alignment, layer = _pick_layer(alignment, layer)
    targets = correlation_targets(alignment)
    if not targets:
        return _empty_figure("no transfer task or similarity configured")
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    fig, axes = plt.subplots(
        len(measures), len(targets), figsize=(4.4 * len(targets), 3.6 * len(measures)), squeeze=False
    )
    for i, measure in enumerate(measures):
        for j, target in enumerate(targets):
            ax = axes[i, j]
            for model in models:
                rows = alignment[alignment["model"] == model].dropna(subset=[measure, target])
                if rows.empty:
                    continue
                final = rows["final"].astype(str).str.lower().eq("true")
                ax.scatter(rows.loc[~final, measure], rows.loc[~final, target], color=colours[model], s=28)
                ax.scatter(
                    rows.loc[final, measure],
                    rows.loc[final, target],
                    color=colours[model],
                    s=90,
                    marker="*",
                    edgecolor="black",
                    linewidth=0.5,
                )
                r = _lookup_r(correlations, layer, measure, target, model)
                if rows[measure].nunique() > 1:
                    slope, intercept = np.polyfit(rows[measure], rows[target], 1)
                    xs = np.linspace(rows[measure].min(), rows[measure].max(), 20)
                    ax.plot(
                        xs,
                        slope * xs + intercept,
                        color=colours[model],
                        linewidth=1.2,
                        label=f"{model}  r = {r:.2f}" if np.isfinite(r) else f"{model}  r = n/a",
                    )
                else:
                    ax.plot([], [], color=colours[model], label=f"{model}  r = n/a")
            pooled = _lookup_r(correlations, layer, measure, target, "pooled")
            ax.set_title(
                f"{target.removeprefix('transfer_')}: pooled r = "
                + (f"{pooled:.2f}" if np.isfinite(pooled) else "n/a")
            )
            ax.set_xlabel(MEASURE_LABELS.get(measure, measure))
            ax.set_ylabel(_target_label(alignment, target))
            if measure in PERCENT_MEASURES:
                # few ticks: signed percentages of narrow ranges otherwise run into each other
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
                ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
            ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"Neuron overlap vs transfer across checkpoints (layer {layer}; ★ = final model)")
    fig.tight_layout()
    return fig


def _target_label(alignment: pd.DataFrame, target: str) -> str:
    if target == "similarity":
        return "parallel-sentence cosine at the probed layer"
    if target == "similarity_all_layers":
        return "parallel-sentence cosine, mean over layers"
    metrics = [m for m in alignment.get(f"{target}_metric", pd.Series(dtype=str)) if m]
    metric = METRIC_LABELS.get(metrics[0], metrics[0]) if metrics else "score"
    return f"{target.removeprefix('transfer_')}: {metric}, mean over targets"


def _lookup_r(correlations: pd.DataFrame | None, layer, measure: str, target: str, model: str) -> float:
    if correlations is None or correlations.empty:
        return np.nan
    rows = correlations[
        (correlations["layer"] == layer)
        & (correlations["measure"] == measure)
        & (correlations["target"] == target)
        & (correlations["model"] == model)
        & (correlations["finals"] == "included")
    ]
    if "seed" in rows:  # a model with seeds: the row pooled over them
        rows = rows[rows["seed"].isna() | (rows["seed"].astype(str) == "pooled")]
    return float(rows["pearson_r"].iloc[0]) if len(rows) else np.nan


def _spread_handles(frame: pd.DataFrame, column: str) -> tuple[list, list]:
    """Legend entries for what `_seed_band` drew: the range over seeds, or the replicate interval."""
    if f"{column}_seed_low" in frame and frame[f"{column}_seed_low"].notna().any():
        return [Rectangle((0, 0), 1, 1, color="grey", alpha=0.3, linewidth=0)], ["range over pre-training seeds"]
    if column == "overlap" and "overlap_ci_low" in frame and frame["overlap_ci_low"].notna().any():
        return [Line2D([], [], color="grey", marker="|", linestyle="none", markersize=10)], [
            "95% interval over probe replicates and pairs"]
    return [], []


def pair_summary(at_k: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per pair at one k: the mean overlap over its rows (seeds and probe replicates) and whether it is
    Holm-significant, its p-value combined over them (xlprobe.uncertainty)."""
    keys = ["attribute", "treebank_a", "treebank_b", "language_a", "language_b"]
    draws = [c for c in ("seed", "replicate") if c in at_k]
    if draws:
        at_k = at_k.assign(replicate=at_k.groupby(draws, dropna=False).ngroup())
    pairs = significant_pairs(at_k, alpha)
    overlap = at_k.groupby(keys, sort=False)["overlap"].mean()
    return pairs.assign(overlap=overlap.reindex(pd.MultiIndex.from_frame(pairs[keys])).to_numpy())


def plot_overlap_heatmaps(
    frames: Mapping[tuple, pd.DataFrame], alpha: float = 0.05, layer: int | None = None
):
    """Language × language overlap at k per attribute (rows) and model at its last checkpoint (columns)."""
    if not frames:
        return _empty_figure("no overlap files")
    layer = max(key[2] for key in frames) if layer is None else layer
    last = _last_points(frames, layer)
    models = list(dict.fromkeys(key[0] for key in frames))
    models = [m for m in models if m in last]
    attributes = sorted({a for key in last.values() for a in frames[key]["attribute"].unique()})
    if not attributes:
        return _empty_figure("no attribute was kept in two languages: no overlap to show")
    vmax = max(
        frames[key].loc[frames[key]["k"] == frames[key]["k"].max(), "overlap"].max()
        for key in last.values()
        if not frames[key].empty
    )
    vmax = max(vmax, 0.01)  # a colour scale even where nothing overlaps
    fig, axes = plt.subplots(
        len(attributes),
        len(models),
        figsize=(3.2 * len(models) + 1.2, 3.0 * len(attributes)),
        squeeze=False,
        layout="constrained",
    )
    # The same treebanks, in config order, in every panel, so that a missing attribute shows as a gap.
    languages = treebank_order(frames[key] for key in last.values())
    any_within = False
    for j, model in enumerate(models):
        key = last[model]
        frame = frames[key]
        at_k = pair_summary(frame[frame["k"] == frame["k"].max()], alpha)
        for i, attribute in enumerate(attributes):
            ax = axes[i, j]
            ax.grid(False)
            ax.set_facecolor("#e8e8e8")  # grey = no value: the diagonal, or a language lacking the attribute
            ax.set_title(f"{attribute}\n{model}, step {step_label(key[1])}", fontsize="medium")
            rows = at_k[at_k["attribute"] == attribute]
            index = {name: n for n, name in enumerate(languages)}
            matrix = np.full((len(languages), len(languages)), np.nan)
            significant = np.zeros(matrix.shape, dtype=bool)
            within = np.zeros(matrix.shape, dtype=bool)
            for a, b, value, marked, same in zip(
                rows["treebank_a"], rows["treebank_b"], rows["overlap"], rows["significant"], same_language(rows)
            ):
                for x, y in ((index[a], index[b]), (index[b], index[a])):
                    matrix[x, y], significant[x, y], within[x, y] = value, marked, same
            # One mesh and one text per labelled cell: seaborn's heatmap adds a text to every cell,
            # which takes minutes to lay out for 14 languages x 20 attributes x 3 models.
            image = ax.pcolormesh(
                np.ma.masked_invalid(matrix),
                vmin=0,
                vmax=vmax,
                cmap="viridis",
                edgecolors="white",
                linewidth=0.8,
            )
            # Two treebanks of one language: a within-language reference, framed apart.
            for x, y in zip(*np.nonzero(within)):
                ax.add_patch(Rectangle((y, x), 1, 1, fill=False, edgecolor="red", linewidth=1.6, hatch="//"))
            any_within = any_within or bool(within.any())
            ax.set_aspect("equal")
            ax.invert_yaxis()
            with_values = len(languages) <= 6
            for x, y in zip(*np.nonzero(~np.isnan(matrix))):
                label = (f"{matrix[x, y]:.0%}" if with_values else "") + ("*" if significant[x, y] else "")
                if label:
                    light = matrix[x, y] < 0.6 * vmax  # white text on the dark end of viridis
                    ax.text(
                        y + 0.5,
                        x + 0.5,
                        label,
                        ha="center",
                        va="center",
                        fontsize="small",
                        color="white" if light else "black",
                        in_layout=False,  # inside the cell anyway; spares the layout thousands of texts
                    )
            # The languages are the same down a column: label the x axis of the bottom panel only.
            ax.set_xticks(np.arange(len(languages)) + 0.5, languages if i == len(attributes) - 1 else [])
            ax.set_yticks(np.arange(len(languages)) + 0.5, languages)
            ax.tick_params(length=0)
            short = max(len(str(name)) for name in languages) <= 3
            ax.tick_params(axis="x", rotation=0 if short else 90)
    bar = fig.colorbar(image, ax=axes, shrink=min(0.8, 2.5 / len(attributes)), pad=0.02)
    bar.set_label("overlap at k")
    bar.formatter = PercentFormatter(1.0)
    bar.update_ticks()
    fig.suptitle(
        f"Pairwise overlap at k, last checkpoint of each model (layer {layer}); "
        f"* = Holm-corrected p < {alpha:g};\ngrey = no pair (diagonal, or a treebank without the attribute)"
        + ("; red hatched = two treebanks of one language (within-language reference)" if any_within else ""),
        fontsize="medium",
    )
    return fig


def plot_overlap_vs_k(frames: Mapping[tuple, pd.DataFrame], layer: int | None = None):
    """Mean overlap over attributes and pairs at every k' ≤ k; one panel per model, one line per step."""
    if not frames:
        return _empty_figure("no overlap files")
    layer = max(key[2] for key in frames) if layer is None else layer
    models = list(dict.fromkeys(key[0] for key in frames if key[2] == layer))
    fig, axes = _grid(len(models), ncols=3, width=4.8, height=3.2, sharey=True)
    for ax, model in zip(axes, models):
        keys = sorted(
            [key for key in frames if key[0] == model and key[2] == layer], key=lambda k: step_key(k[1])
        )
        colours = sns.color_palette("viridis", n_colors=len(keys))
        chance_frame = None
        for colour, key in zip(colours, keys):
            frame = frames[key]
            if frame.empty:
                continue
            chance_frame = overlap_by_k(frame)
            ax.plot(chance_frame.index, chance_frame["overlap"], color=colour, label=step_label(key[1]))
        if chance_frame is not None:
            ax.plot(
                chance_frame.index, chance_frame["chance"], color="black", linestyle="--", label="chance k/D"
            )
            if "random_overlap" in chance_frame and chance_frame["random_overlap"].notna().any():
                ax.plot(
                    chance_frame.index,
                    chance_frame["random_overlap"],
                    color="grey",
                    linestyle=":",
                    label="random neurons",
                )
        ax.set_title(model)
        ax.set_xlabel("k (top neurons compared)")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.legend(
            title="step",
            fontsize="small",
            title_fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
    axes[0].set_ylabel("mean overlap")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(f"Overlap as a function of k (layer {layer}; mean over attributes and cross-lingual pairs)")
    fig.tight_layout()
    return fig


def plot_similarity_vs_step(
    alignment: pd.DataFrame, similarity: Mapping[tuple, pd.DataFrame], layer: int | None = None
):
    """Parallel-sentence cosine per checkpoint at the probed layer, and per layer for each model."""
    if not similarity or "similarity" not in alignment:
        return _empty_figure("no similarity configured")
    alignment, layer = _pick_layer(alignment, layer)
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    steps = ordered_steps(alignment["step"])
    fig, axes = _grid(1 + len(models), ncols=3, width=4.0, height=3.2)
    position = _step_axis(axes[0], steps)
    for model in models:
        rows = alignment[alignment["model"] == model]
        axes[0].plot(
            rows["step"].map(position), rows["similarity"], marker="o", color=colours[model], label=model
        )
    axes[0].set_title(f"at layer {layer}")
    axes[0].set_ylabel("mean cosine (translation pairs)")
    axes[0].legend(fontsize="small")
    for ax, model in zip(axes[1:], models):
        keys = sorted([key for key in similarity if key[0] == model], key=lambda k: step_key(k[1]))
        for colour, key in zip(sns.color_palette("viridis", n_colors=len(keys)), keys):
            curve = similarity_by_layer(similarity[key])
            ax.plot(curve.index, curve.values, marker=".", color=colour, label=step_label(key[1]))
        ax.axvline(layer, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{model} (dashed: probed layer)")
        ax.set_xlabel("layer")
        ax.set_ylabel("mean cosine")
        ax.legend(title="step", fontsize="small", title_fontsize="small")
    fig.suptitle("Cosine similarity of parallel sentences (last-token states)")
    fig.tight_layout()
    return fig


def plot_overlap_vs_lm_loss(alignment: pd.DataFrame, layer: int | None = None):
    """Mean overlap (and chance, dashed) against each checkpoint's LM loss, one line per model in step
    order; the loss axis runs from high to low, the way training goes. Duplicates and suspects marked."""
    if "lm_loss" not in alignment or alignment["lm_loss"].isna().all():
        return _empty_figure("no LM loss measured")
    alignment, layer = _pick_layer(alignment, layer)
    if alignment["overlap"].isna().all():
        return _empty_figure("no attribute was kept in two languages: no overlap to show")
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    flags = flagged_points(alignment)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for model in models:
        rows = alignment[alignment["model"] == model].sort_values("step", key=lambda s: s.map(step_key))
        rows = rows[np.isfinite(rows["lm_loss"])]  # no point for a loss that is not a number (suspect anyway)
        ax.plot(rows["lm_loss"], rows["overlap"], marker="o", color=colours[model], label=model)
        if len(rows):  # chance k/D is one value per model
            ax.axhline(rows["chance"].iloc[0], linestyle="--", color=colours[model], linewidth=1)
        for step, x, y in zip(rows["step"], rows["lm_loss"], rows["overlap"]):
            ax.annotate(step_label(step), (x, y), textcoords="offset points", xytext=(3, 4), fontsize="x-small")
        _mark_checks(ax, model, rows["step"], rows["lm_loss"], rows["overlap"], flags)
    ax.invert_xaxis()
    ax.set_xlabel("LM loss on the fixed sample (nats per token; training goes →)")
    ax.set_ylabel("overlap of top-k neurons")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    handles = [Line2D([], [], color=colours[m], marker="o") for m in models]
    handles.append(Line2D([], [], color="grey", linestyle="--"))
    marks, mark_labels = _check_handles(flags)
    _legend_below(fig, handles + marks, [*models, "chance (k/D), per model", *mark_labels], ncol=2)
    fig.suptitle(f"Cross-lingual neuron overlap against LM loss (layer {layer})")
    fig.tight_layout()
    return fig


def random_pair_band(width: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """The central `level` range of one random pair's overlap / chance (hypergeometric shared count)."""
    tail = (1 - level) / 2
    low, high = hypergeom.ppf([tail, 1 - tail], width, k, k)
    return low / k / (k / width), high / k / (k / width)


def _lines_per_model(alignment: pd.DataFrame):
    """A figure over the checkpoints' steps: (fig, ax, models, colours, [(model, x, its rows in step order)])."""
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    position = _step_axis(ax, ordered_steps(alignment["step"]))
    lines = []
    for model in models:
        rows = alignment[alignment["model"] == model].sort_values("step", key=lambda s: s.map(step_key))
        lines.append((model, rows["step"].map(position), rows))
    return fig, ax, models, colours, lines


def plot_overlap_over_chance_vs_step(alignment: pd.DataFrame, layer: int | None = None):
    """Overlap / chance per checkpoint, one line per model (mean over seeds, band over seeds or the
    replicate interval as error bars), against the range of one random pair (shaded, per model)."""
    alignment, layer = _pick_layer(alignment, layer)
    if alignment["overlap"].isna().all():
        return _empty_figure("no attribute was kept in two languages: no overlap to show")
    alignment = alignment.assign(overlap_ci_low=alignment["overlap_ci_low"] / alignment["chance"],
                                 overlap_ci_high=alignment["overlap_ci_high"] / alignment["chance"],
                                 overlap=alignment["overlap_over_chance"]) if "overlap_ci_low" in alignment \
        else alignment.assign(overlap=alignment["overlap_over_chance"])
    alignment = mean_over_seeds(alignment, ["overlap"])
    fig, ax, models, colours, lines = _lines_per_model(alignment)
    for model, x, rows in lines:
        ax.plot(x, rows["overlap"], marker="o", color=colours[model], label=model)
        _seed_band(ax, x, rows, "overlap", colours[model])
        width, k = rows["width"].dropna(), rows["k"].dropna()
        if len(width) and len(k):
            low, high = random_pair_band(int(width.iloc[0]), int(k.iloc[0]))
            ax.axhspan(low, high, color=colours[model], alpha=0.07, linewidth=0)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_ylabel("overlap / chance (k/D)")
    handles = [Line2D([], [], color=colours[m], marker="o") for m in models]
    handles += [Line2D([], [], color="black", linestyle="--"),
                Rectangle((0, 0), 1, 1, color="grey", alpha=0.2, linewidth=0)]
    spread, spread_labels = _spread_handles(alignment, "overlap")
    _legend_below(fig, handles + spread, [*models, "chance", "95% range of one random pair (per model)",
                                          *spread_labels], ncol=2)
    fig.suptitle(f"Overlap over chance with its uncertainty (layer {layer})")
    fig.tight_layout()
    return fig


def plot_stability_vs_step(alignment: pd.DataFrame, layer: int | None = None):
    """Stability of the top-k picks across probe replicates per checkpoint, one line per model (band
    over seeds), its chance level k/D dashed."""
    alignment, layer = _pick_layer(alignment, layer)
    if "stability" not in alignment or alignment["stability"].isna().all():
        return _empty_figure("one probe replicate: no stability to show (set probe.replicates >= 2)")
    alignment = mean_over_seeds(alignment, ["stability", "stability_chance"])
    fig, ax, models, colours, lines = _lines_per_model(alignment)
    for model, x, rows in lines:
        ax.plot(x, rows["stability"], marker="o", color=colours[model], label=model)
        _seed_band(ax, x, rows, "stability", colours[model])
        ax.plot(x, rows["stability_chance"], linestyle="--", color=colours[model], linewidth=1)
    ax.set_ylabel("share of top-k picks two replicates share")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1.02)
    handles = [Line2D([], [], color=colours[m], marker="o") for m in models]
    handles.append(Line2D([], [], color="grey", linestyle="--"))
    spread, spread_labels = _spread_handles(alignment, "stability")
    _legend_below(fig, handles + spread, [*models, "chance (k/D), per model", *spread_labels], ncol=2)
    fig.suptitle(f"Stability of the selected neurons across probe replicates (layer {layer})")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- alignment measures
# The alignment measures of measures_vs_transfer, each with the alignment column of its null.
ALIGNMENT_MEASURES = {
    "overlap_over_chance": ("top-k neuron overlap / chance", None),
    "probe_transfer": ("cross-lingual probe accuracy", "probe_transfer_null"),
    "retrieval": ("parallel-sentence retrieval", "retrieval_null"),
    "similarity": ("parallel-sentence cosine", None),
}


def plot_measures_vs_transfer(alignment: pd.DataFrame, correlations: pd.DataFrame | None = None,
                              layer: int | None = None):
    """Each alignment measure (rows) against the first transfer task across checkpoints, per model and
    pooled (columns): one point per checkpoint, joined in step order, the step beside it; the
    measure's null as a dotted line; Pearson r from the correlation table in the title."""
    alignment, layer = _pick_layer(alignment, layer)
    tasks = _transfer_tasks(alignment)
    measures = [m for m in ALIGNMENT_MEASURES if m in alignment and alignment[m].notna().any()]
    if not tasks or not measures:
        return _empty_figure("no transfer task or no alignment measure")
    target = tasks[0]
    models = list(dict.fromkeys(alignment["model"]))
    colours = model_colours(models)
    columns = [*models, "pooled"]
    fig, axes = plt.subplots(len(measures), len(columns), figsize=(3.4 * len(columns), 2.8 * len(measures)),
                             squeeze=False)
    for row, measure in enumerate(measures):
        label, null = ALIGNMENT_MEASURES[measure]
        for col, panel in enumerate(columns):
            ax = axes[row][col]
            for model in models if panel == "pooled" else [panel]:
                rows = sort_points(alignment[alignment["model"] == model])
                ax.plot(rows[measure], rows[target], marker="o", color=colours[model], label=model)
                for x, y, step in zip(rows[measure], rows[target], rows["step"]):
                    ax.annotate(step_label(step), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
                if null and null in rows and rows[null].notna().any():
                    ax.axvline(rows[null].mean(), linestyle=":", color=colours[model])
            r = _lookup_r(correlations, layer, measure, target, panel)
            ax.set_title(f"{panel}: r = {r:.2f}" if np.isfinite(r) else panel, fontsize=9)
            ax.set_xlabel(label)
            if col == 0:
                ax.set_ylabel(_target_label(alignment, target), fontsize=8)
    fig.suptitle(f"Alignment measures against zero-shot transfer across checkpoints (layer {layer}; "
                 "dotted: the measure's null)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- all figures


def plot_figures(
    alignment_path: str | os.PathLike,
    attributes_path: str | os.PathLike,
    correlations_path: str | os.PathLike | None,
    overlap_paths: Iterable[str | os.PathLike],
    similarity_paths: Iterable[str | os.PathLike],
    outputs: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]],
    alpha: float = 0.05,
) -> None:
    """Draw every figure named in `outputs` (name -> (png, pdf))."""
    unknown = set(outputs) - set(FIGURE_NAMES)
    if unknown:
        raise ValueError(f"unknown figure names {sorted(unknown)} (known: {list(FIGURE_NAMES)})")
    alignment = read_table(alignment_path)
    attributes = read_table(attributes_path)
    correlations = read_tsv(correlations_path) if correlations_path else None
    overlaps = overlap_frames(overlap_paths)
    similarity = similarity_frames(similarity_paths)
    # Lines per model over steps: the mean over a model's seeds.
    per_step = mean_over_seeds(alignment, list(alignment.select_dtypes("number").columns.difference(["layer"])))
    makers = {
        "overlap_vs_step": lambda: plot_overlap_vs_step(alignment, attributes),
        "overlap_over_chance_vs_step": lambda: plot_overlap_over_chance_vs_step(alignment),
        "stability_vs_step": lambda: plot_stability_vs_step(alignment),
        "transfer_vs_step": lambda: plot_transfer_vs_step(per_step),
        "overlap_vs_transfer": lambda: plot_overlap_vs_transfer(alignment, correlations),
        "overlap_heatmaps": lambda: plot_overlap_heatmaps(overlaps, alpha=alpha),
        "overlap_vs_k": lambda: plot_overlap_vs_k(overlaps),
        "overlap_vs_lm_loss": lambda: plot_overlap_vs_lm_loss(per_step),
        "similarity_vs_step": lambda: plot_similarity_vs_step(per_step, similarity),
        "measures_vs_transfer": lambda: plot_measures_vs_transfer(per_step, correlations),
    }
    for name, (png, pdf) in outputs.items():
        with plt.rc_context(STYLE):
            log.info("drawing %s", name)
            save_figure(makers[name](), png, pdf)
