import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xlprobe.correlation import MEASURES, bootstrap_ci, correlate, correlation_table, write_correlations
from xlprobe.io import read_json, read_tsv, write_tsv

X = [0.05, 0.11, 0.09, 0.20, 0.31, 0.28, 0.40]
Y = [0.30, 0.35, 0.41, 0.39, 0.55, 0.60, 0.58]


def test_correlate_matches_scipy():
    result = correlate(X, Y, resamples=200, seed=0)
    pearson, spearman = stats.pearsonr(X, Y), stats.spearmanr(X, Y)
    assert result["pearson_r"] == pytest.approx(pearson.statistic)
    assert result["pearson_p"] == pytest.approx(pearson.pvalue)
    assert result["spearman_rho"] == pytest.approx(spearman.statistic)
    assert result["spearman_p"] == pytest.approx(spearman.pvalue)
    assert result["n"] == 7
    assert result["pearson_ci_low"] <= result["pearson_r"] <= result["pearson_ci_high"]


def test_bootstrap_against_a_plain_loop():
    seed, resamples = 7, 300
    index = np.random.default_rng(seed).integers(0, len(X), size=(resamples, len(X)))
    x, y = np.array(X), np.array(Y)
    pearson, spearman = [], []
    for i in index:
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            pearson.append(np.corrcoef(x[i], y[i])[0, 1])
            spearman.append(stats.spearmanr(x[i], y[i]).statistic)
    low, high, valid = bootstrap_ci(X, Y, "pearson", resamples, seed)
    assert valid == len(pearson)
    assert (low, high) == pytest.approx(tuple(np.percentile(pearson, [2.5, 97.5])))
    assert bootstrap_ci(X, Y, "spearman", resamples, seed)[:2] == pytest.approx(
        tuple(np.percentile(spearman, [2.5, 97.5]))
    )


def test_bootstrap_is_seeded():
    assert bootstrap_ci(X, Y, "pearson", 500, 3) == bootstrap_ci(X, Y, "pearson", 500, 3)
    assert bootstrap_ci(X, Y, "pearson", 500, 3) != bootstrap_ci(X, Y, "pearson", 500, 4)


def test_too_few_points_and_constant_input_give_nan_with_note():
    few = correlate([0.1, 0.2], [0.3, 0.4])
    assert np.isnan(few["pearson_r"]) and np.isnan(few["spearman_p"]) and "fewer than 3" in few["note"]
    nan_dropped = correlate([0.1, np.nan, 0.2, 0.3], [1, 2, np.nan, 3])
    assert nan_dropped["n"] == 2 and "fewer than 3" in nan_dropped["note"]
    flat = correlate([0.1, 0.1, 0.1], [1, 2, 3])
    assert np.isnan(flat["pearson_r"]) and flat["note"] == "constant input"


def test_three_points_give_r_but_no_bootstrap_interval():
    """Of 3 points, 18 of 27 resamples hold 2 distinct points (r = ±1 by construction): the percentile
    interval held a known r in 41-67% of series, not 95% (benchmarks/validity.py). From 4 points on
    it is given."""
    three = correlate(X[:3], Y[:3], resamples=500, seed=0)
    assert three["pearson_r"] == pytest.approx(stats.pearsonr(X[:3], Y[:3]).statistic)
    assert np.isnan(three["pearson_ci_low"]) and np.isnan(three["spearman_ci_high"])
    assert three["bootstrap_valid"] == 0 and "no bootstrap interval below 4 points" in three["note"]
    assert np.isnan(bootstrap_ci(X[:3], Y[:3], "pearson", 500, 0)[0])
    four = correlate(X[:4], Y[:4], resamples=500, seed=0)
    assert four["pearson_ci_low"] <= four["pearson_r"] <= four["pearson_ci_high"]


def alignment_frame():
    rows = []
    for model, offset, steps in (
        ("small", 0.0, [0, 10, 20, "final"]),
        ("large", 0.1, [0, 10, 20, 30, "final"]),
    ):
        for i, step in enumerate(steps):
            overlap = 0.1 + 0.1 * i + offset
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "final": step == "final",
                    "layer": 4,
                    "overlap": overlap,
                    "chance": 0.05,
                    "overlap_minus_chance": overlap - 0.05,
                    "overlap_over_chance": overlap / 0.05,
                    "transfer_pos": 0.2 + 0.3 * overlap + 0.02 * (-1) ** i,
                    "transfer_pos_source": 0.9,
                    "transfer_pos_metric": "f1",
                }
            )
    return pd.DataFrame(rows)


def test_correlation_table_groups():
    alignment = alignment_frame()
    table = correlation_table(alignment, resamples=100, seed=0)
    assert set(table["target"]) == {"transfer_pos"}  # source score and metric name are not targets
    assert set(table["measure"]) == set(MEASURES)
    assert set(table["model"]) == {"small", "large", "pooled"}
    assert len(table) == len(MEASURES) * 3 * 2
    pooled = table[
        (table.measure == "overlap") & (table.model == "pooled") & (table.finals == "included")
    ].iloc[0]
    assert pooled["n"] == 9
    assert pooled["pearson_r"] == pytest.approx(
        stats.pearsonr(alignment["overlap"], alignment["transfer_pos"]).statistic
    )
    excluded = table[
        (table.measure == "overlap") & (table.model == "small") & (table.finals == "excluded")
    ].iloc[0]
    kept = alignment[(alignment.model == "small") & ~alignment.final]
    assert excluded["n"] == 3
    assert excluded["spearman_rho"] == pytest.approx(
        stats.spearmanr(kept["overlap"], kept["transfer_pos"]).statistic
    )


def test_write_correlations_round_trip(tmp_path):
    write_tsv(tmp_path / "alignment.tsv", alignment_frame())
    write_correlations(tmp_path / "alignment.tsv", tmp_path / "c.tsv", resamples=50, seed=1)
    first = (tmp_path / "c.tsv").read_text()
    write_correlations(tmp_path / "alignment.tsv", tmp_path / "c.tsv", resamples=50, seed=1)
    assert (tmp_path / "c.tsv").read_text() == first  # same seed, same file
    record = read_json(tmp_path / "c.provenance.json")
    assert record["inputs"] == {"alignment": str(tmp_path / "alignment.tsv")}
    assert record["config"] == {"bootstrap": 50, "seed": 1}
    table = read_tsv(tmp_path / "c.tsv")
    excluded, included = table[table.finals == "excluded"], table[table.finals == "included"]
    assert (excluded["n"].to_numpy() < included["n"].to_numpy()).all()
