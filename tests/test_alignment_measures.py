"""Probe transfer and retrieval in the alignment table, the correlations and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from results_layout import identified
from scipy import stats
from test_alignment import overlap_file, transfer_file

from xlprobe.alignment import read_table, write_alignment_table
from xlprobe.correlation import write_correlations
from xlprobe.io import write_tsv
from xlprobe.plots import plot_figures
from xlprobe.probe_transfer import COLUMNS as PROBE_TRANSFER_COLUMNS

STEPS = (0, 100, 200, 300)


def readout_file(path, rows, point):
    """rows: (attribute, a, b, accuracy, null_mean, p_value); the rest fixed."""
    frame = pd.DataFrame(rows, columns=["attribute", "treebank_a", "treebank_b", "accuracy", "null_mean", "p_value"])
    frame = frame.assign(language_a=frame["treebank_a"], language_b=frame["treebank_b"], majority_accuracy=0.4,
                         own_accuracy=0.9, normalized=(frame["accuracy"] - 0.4) / 0.5)
    write_tsv(path, identified(frame.reindex(columns=PROBE_TRANSFER_COLUMNS), path, "probe_transfer", point))
    return path


def similarity_file(path, retrieval, point):
    rows = [("xa", t, layer, pooling, 0.5, 100, retrieval + (0.1 if pooling == "mean" else 0) + 0.01 * i, 50, 0.02, 0.001)
            for i, t in enumerate(("xb", "xc")) for layer in (3, 4) for pooling in ("last", "mean")]
    frame = pd.DataFrame(rows, columns=["source", "target", "layer", "pooling", "cosine", "pairs",
                                        "retrieval", "retrieval_pairs", "retrieval_null", "retrieval_p"])
    write_tsv(path, identified(frame, path, "similarity", point))
    return path


@pytest.fixture
def tables(tmp_path):
    overlap, transfer, similarity, readouts = [], [], [], []
    for i, step in enumerate(STEPS):
        point = {"model": "m", "step": step, "layer": 4}
        overlap.append(overlap_file(tmp_path / f"o{step}.tsv", 10, [("Number", "xa", "xb", 2, i % 2, 0.5)], point))
        transfer.append(transfer_file(tmp_path / f"pos/m/{step}/pos.tsv",
                                      [("xa", "source", "accuracy", 0.9), ("xb", "target", "accuracy", 0.2 + 0.1 * i)]))
        similarity.append(similarity_file(tmp_path / f"similarity/m/{step}.tsv", 0.1 * i, None))
        # Number: two ordered pairs; Case: one. Macro mean over attributes of per-attribute means.
        readouts.append(readout_file(tmp_path / f"r{step}.tsv", [
            ("Number", "xa", "xb", 0.5 + 0.1 * i, 0.3, 0.01),
            ("Number", "xb", "xa", 0.7 + 0.1 * i, 0.3, 0.5),
            ("Case", "xa", "xb", 0.4 + 0.05 * i, 0.2, 0.01),
        ], point))
    alignment = write_alignment_table(overlap, transfer, similarity, tmp_path / "alignment.tsv",
                                      tmp_path / "alignment_attributes.tsv", probe_transfer_paths=readouts)
    return tmp_path, alignment


def test_alignment_reads_probe_transfer_and_retrieval_at_the_probed_layer(tables):
    root, _ = tables
    table = read_table(root / "alignment.tsv")
    for i, step in enumerate(STEPS):
        row = table[table["step"] == step].iloc[0]
        number, case = (0.5 + 0.1 * i + 0.7 + 0.1 * i) / 2, 0.4 + 0.05 * i
        assert row["probe_transfer"] == pytest.approx((number + case) / 2)
        assert row["probe_transfer_null"] == pytest.approx((0.3 + 0.2) / 2)
        assert row["probe_transfer_share_significant"] == pytest.approx((0.5 + 1.0) / 2)
        assert row["probe_transfer_pairs"] == 3
        # The last-token pooling at layer 4, mean over the two pairs (0.1 i and 0.1 i + 0.01).
        assert row["retrieval"] == pytest.approx(0.1 * i + 0.005)
        assert row["retrieval_null"] == pytest.approx(0.02)


def test_correlations_have_each_measure_against_transfer_and_the_figure_draws(tables):
    root, _ = tables
    table = write_correlations(root / "alignment.tsv", root / "correlations.tsv", resamples=50)
    pooled = table[(table["model"] == "pooled") & (table["finals"] == "included")].set_index(["measure", "target"])
    alignment = read_table(root / "alignment.tsv")
    for measure in ("probe_transfer", "retrieval", "similarity"):
        assert (measure, "transfer_pos") in pooled.index
    expected = stats.pearsonr(alignment["probe_transfer"], alignment["transfer_pos"]).statistic
    assert pooled.loc[("probe_transfer", "transfer_pos"), "pearson_r"] == pytest.approx(expected)
    assert not np.isnan(pooled.loc[("retrieval", "transfer_pos"), "pearson_ci_low"])
    assert ("retrieval", "similarity") not in pooled.index  # new measures go against transfer only
    out = {"measures_vs_transfer": (root / "f.png", root / "f.pdf")}
    plot_figures(root / "alignment.tsv", root / "alignment_attributes.tsv", root / "correlations.tsv", [], [], out)
    assert (root / "f.png").stat().st_size > 10_000 and (root / "f.pdf").exists()
