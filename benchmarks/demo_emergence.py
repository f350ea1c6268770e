"""After a demo run: does cross-lingual alignment emerge? Per model and checkpoint, the overlap of the
probes' top-k neurons against chance and against the spread of the same statistic for random neuron
sets, the Holm-significant pairs per attribute, the zero-shot transfer, and the correlations.

    python benchmarks/demo_emergence.py [results/demo]

The random band: the macro-mean overlap (mean over pairs, then over attributes, as alignment.tsv
computes it) of `DRAWS` draws in which every treebank's top-k set of every attribute is a random
k-subset of the D neurons; its 2.5% and 97.5% quantiles.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from xlprobe.alignment import read_table
from xlprobe.io import read_tsv

DRAWS = 2000
ALPHA = 0.05


def random_band(at_k: pd.DataFrame, width: int, k: int, seed: int = 0) -> tuple[float, float]:
    """2.5%/97.5% quantiles of the macro-mean overlap when every selection is random."""
    rng = np.random.default_rng(seed)
    means = np.zeros(DRAWS)
    attributes = sorted(at_k["attribute"].unique())
    for attribute in attributes:
        pairs = at_k[at_k["attribute"] == attribute][["treebank_a", "treebank_b"]].to_numpy()
        treebanks = sorted(set(pairs.ravel()))
        # One random k-subset per treebank and draw: the neurons whose uniform key ranks below k.
        chosen = {tb: rng.random((DRAWS, width)).argsort(axis=1).argsort(axis=1) < k for tb in treebanks}
        pair_overlaps = [(chosen[a] & chosen[b]).sum(axis=1) / k for a, b in pairs]
        means += np.mean(pair_overlaps, axis=0)
    means /= len(attributes)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def emergence(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "overlap").glob("*/*/layer*.tsv")):
        frame = read_tsv(path)
        k = int(frame["k"].max())
        # Cross-lingual pairs only, as alignment.tsv; two treebanks of one language are a reference.
        at_k = frame[(frame["k"] == k) & (frame["language_a"] != frame["language_b"])]
        width = round(k / at_k["chance"].iloc[0])
        per_attribute = at_k.groupby("attribute")["overlap"].mean()
        low, high = random_band(at_k, width, k)
        significant = at_k[at_k["p_holm"] < ALPHA]
        rows.append({
            "model": path.parent.parent.name,
            "step": int(path.parent.name) if path.parent.name.isdigit() else path.parent.name,
            "layer": path.stem,
            "overlap": per_attribute.mean(),
            "chance": k / width,
            "over_chance": per_attribute.mean() / (k / width),
            "random_2.5%": low,
            "random_97.5%": high,
            "significant_pairs": f"{len(significant)}/{len(at_k)}",
            "attributes_significant": ", ".join(sorted(significant["attribute"].unique())),
        })
    frame = pd.DataFrame(rows)
    return frame.sort_values(["model", "layer", "step"], key=lambda s: s.map(str) if s.name != "step" else s)


def pairs_at(results: Path, model: str, step: str, layer: str) -> pd.DataFrame:
    frame = read_tsv(results / "overlap" / model / step / f"{layer}.tsv")
    at_k = frame[frame["k"] == frame["k"].max()]
    return at_k.pivot_table(index=["language_a", "language_b"], columns="attribute", values="overlap")


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results/demo")
    pd.set_option("display.width", 200)
    table = emergence(results)
    print("overlap at k (macro mean over attributes) per checkpoint:")
    print(table.round(3).to_string(index=False), "\n")
    for (model, layer), group in table.groupby(["model", "layer"]):
        last = str(group["step"].iloc[-1])
        print(f"{model} {layer} step {last}: overlap per language pair and attribute")
        print(pairs_at(results, model, last, layer).round(2).to_string(), "\n")
    alignment = results / "alignment.tsv"
    if alignment.exists():
        points = read_table(alignment)
        transfer = [c for c in points.columns if c.startswith("transfer_") and not c.endswith("_source")]
        print(points[["model", "step", "layer", "overlap_over_chance", *transfer]].round(3).to_string(index=False))
    correlations = results / "correlations.tsv"
    if correlations.exists():
        print("\n" + read_tsv(correlations).round(3).to_string(index=False))
