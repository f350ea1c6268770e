"""After a demo run: does cross-lingual alignment emerge? Per model and checkpoint, the overlap of the
probes' top-k neurons against chance and against the spread of the same statistic for random neuron
sets, the Holm-significant pairs per attribute, the zero-shot transfer, and the correlations.

    python benchmarks/demo_emergence.py [results/demo] [--figure docs/showcase_emergence.png]

The random band: the macro-mean overlap (mean over pairs, then over attributes, as alignment.tsv
computes it) of `DRAWS` draws in which every treebank's top-k set of every attribute is a random
k-subset of the D neurons; its 2.5% and 97.5% quantiles. D is the probes' width (the hidden size,
or 4 x hidden with activations.site: mlp).

Then each Holm-significant pair at the last checkpoint, the transfer per
checkpoint, the correlations with their bootstrap intervals, and with --figure overlap / chance per
checkpoint against the random band beside the transfer.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from xlprobe.alignment import read_table, step_key
from xlprobe.identity import step_value
from xlprobe.io import read_tsv

DRAWS = 2000
ALPHA = 0.05


def random_band(cross: pd.DataFrame, width: int, k: int, seed: int = 0) -> tuple[float, float]:
    """2.5%/97.5% quantiles of the macro-mean overlap when every selection is random."""
    rng = np.random.default_rng(seed)
    means = np.zeros(DRAWS)
    attributes = sorted(cross["attribute"].unique())
    for attribute in attributes:
        pairs = cross[cross["attribute"] == attribute][["treebank_a", "treebank_b"]].to_numpy()
        treebanks = sorted(set(pairs.ravel()))
        # One random k-subset per treebank and draw: the neurons whose uniform key ranks below k.
        chosen = {tb: rng.random((DRAWS, width)).argsort(axis=1).argsort(axis=1) < k for tb in treebanks}
        pair_overlaps = [(chosen[a] & chosen[b]).sum(axis=1) / k for a, b in pairs]
        means += np.mean(pair_overlaps, axis=0)
    means /= len(attributes)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def at_k(frame: pd.DataFrame, k: int | None) -> tuple[pd.DataFrame, int]:
    """The rows at k (default the probes' k; the overlap tables hold every k' up to it)."""
    k = int(frame["k"].max()) if k is None else k
    if k not in set(frame["k"]):
        raise ValueError(f"--k {k}: the overlap tables go up to k = {int(frame['k'].max())}")
    return frame[frame["k"] == k], k


def emergence(results: Path, k: int | None = None) -> pd.DataFrame:
    """Per overlap table (one model, seed, step and layer; identity from its own columns, `run` its
    folder): the macro-mean overlap at k over chance, the random band, the Holm-significant pairs."""
    rows = []
    for path in sorted((results / "overlap").glob("*/*/layer*.tsv")):
        frame, used = at_k(read_tsv(path), k)
        # Cross-lingual pairs only, as alignment.tsv; two treebanks of one language are a reference.
        cross = frame[frame["language_a"] != frame["language_b"]]
        width = round(used / cross["chance"].iloc[0])
        per_attribute = cross.groupby("attribute")["overlap"].mean()
        low, high = random_band(cross, width, used)
        significant = cross[cross["p_holm"] < ALPHA]
        seed = frame["seed"].iloc[0] if "seed" in frame else np.nan
        rows.append({
            "model": frame["model"].iloc[0],
            "seed": pd.NA if pd.isna(seed) else int(seed),
            "run": path.parent.parent.name,
            "k": used,
            "step": step_value(str(frame["step"].iloc[0])),
            "layer": int(frame["layer"].iloc[0]),
            "overlap": per_attribute.mean(),
            "chance": used / width,
            "over_chance": per_attribute.mean() / (used / width),
            "random_2.5%": low,
            "random_97.5%": high,
            "above_band": bool(per_attribute.mean() > high),
            "significant_pairs": f"{len(significant)}/{len(cross)}",
            "attributes_significant": ", ".join(sorted(significant["attribute"].unique())),
        })
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame.sort_values(["run", "layer", "step"], key=lambda s: s.map(step_key) if s.name == "step" else s)


def pairs_at(results: Path, run: str, step: str, layer: str, k: int | None = None) -> pd.DataFrame:
    frame, _ = at_k(read_tsv(results / "overlap" / run / step / f"{layer}.tsv"), k)
    return frame.pivot_table(index=["language_a", "language_b"], columns="attribute", values="overlap")


def significant_at(results: Path, run: str, step: str, layer: str, k: int | None = None) -> pd.DataFrame:
    """The cross-lingual pairs whose overlap at k is Holm-significant."""
    frame, _ = at_k(read_tsv(results / "overlap" / run / step / f"{layer}.tsv"), k)
    cross = frame[frame["language_a"] != frame["language_b"]]
    columns = ["attribute", "language_a", "language_b", "shared", "overlap", "chance", "p_value", "p_holm"]
    return cross[cross["p_holm"] < ALPHA][columns].sort_values(["attribute", "p_holm"])


def plot_emergence(table: pd.DataFrame, points: pd.DataFrame | None, path: Path) -> None:
    """Per model and layer: overlap / chance per checkpoint with the random band, transfer on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(table.groupby(["run", "layer"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.6), squeeze=False)
    for ax, ((run, layer), group) in zip(axes[0], groups):
        x = np.arange(len(group))
        ax.fill_between(x, group["random_2.5%"] / group["chance"], group["random_97.5%"] / group["chance"],
                        color="grey", alpha=0.3, label="random neurons, 95%")
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.plot(x, group["over_chance"], marker="o", color="C0", label="top-k overlap / chance")
        ax.set_xticks(x, [str(step) for step in group["step"]])
        ax.set_xlabel("pre-training step")
        ax.set_ylabel("overlap / chance (k/D)")
        ax.set_title(f"{run}, layer {layer}, k = {group['k'].iloc[0]}")
        if points is not None:
            model, seed = group["model"].iloc[0], group["seed"].iloc[0]
            same_seed = points["seed"].isna() if pd.isna(seed) else points["seed"] == seed
            rows = points[(points["model"] == model) & same_seed & (points["layer"] == layer)]
            rows = rows.set_index(rows["step"].astype(str)).reindex([str(step) for step in group["step"]])
            right = ax.twinx()
            for i, column in enumerate(c for c in rows.columns if c.startswith("transfer_") and c.count("_") == 1):
                right.plot(x, rows[column].to_numpy(dtype=float), marker="s", color=f"C{i + 1}",
                           label=f"zero-shot {column.removeprefix('transfer_')} transfer")
            right.set_ylabel("transfer score")
            right.legend(loc="lower right", fontsize="small")
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", default="results/demo", type=Path)
    parser.add_argument("--figure", type=Path, help="write overlap / chance and transfer per checkpoint here")
    parser.add_argument("--k", type=int, help="read the overlap at this k (default the probes' k); "
                        "alignment.tsv and correlations.tsv stay at the probes' k")
    args = parser.parse_args()
    results = args.results
    pd.set_option("display.width", 200)
    table = emergence(results, args.k)
    print("overlap at k (macro mean over attributes) per checkpoint:")
    print(table.round(3).to_string(index=False), "\n")
    for (run, layer), group in table.groupby(["run", "layer"]):
        last, layer = str(group["step"].iloc[-1]), f"layer{layer}"
        print(f"{run} {layer} step {last}: overlap at k = {group['k'].iloc[-1]} per language pair and attribute")
        print(pairs_at(results, run, last, layer, args.k).round(2).to_string(), "\n")
        significant = significant_at(results, run, last, layer, args.k)
        print(f"{run} {layer} step {last}: Holm-significant pairs (alpha {ALPHA}) in "
              f"{significant['attribute'].nunique()} attribute(s)")
        print((significant.round(4).to_string(index=False) if len(significant) else "none"), "\n")
    alignment = results / "alignment.tsv"
    points = None
    if alignment.exists():
        points = read_table(alignment)
        transfer = [c for c in points.columns if c.startswith("transfer_") and not c.endswith("_source")]
        print(points[["model", "step", "layer", "overlap_over_chance", *transfer]].round(3).to_string(index=False))
    correlations = results / "correlations.tsv"
    if correlations.exists():
        print("\n" + read_tsv(correlations).round(3).to_string(index=False))
    if args.figure:
        plot_emergence(table, points, args.figure)
        print(f"\nwrote {args.figure}")
