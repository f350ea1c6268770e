"""Controls with a known answer: planted cross-lingual sharing through the probe, overlap and correlation stages.

The full benchmark (benchmarks/validity.py, 20 seeds, D = 128 and 1024) writes docs/validity.md; here
its --quick subset runs, and the null statistics are checked where they can be sampled cheaply.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlprobe.io import write_json
from xlprobe.overlap import compute_overlap
from xlprobe.validity import ATTRIBUTES, LANGUAGES, Setting, correlation_coverage, plant

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "validity.py"


@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5, 1.0])
def test_planted_neurons_share_rho_across_every_language(rho):
    setting = Setting(width=128, shared_share=rho, k=10)
    planted = plant(setting, np.random.default_rng(0))
    shared = round(rho * setting.planted)
    for attribute in ATTRIBUTES:
        sets = [set(planted[attribute][lang].tolist()) for lang in LANGUAGES]
        assert all(len(s) == setting.planted for s in sets)
        common = set.intersection(*sets)
        assert set(planted[attribute][LANGUAGES[0]][:shared].tolist()) <= common
    for lang in LANGUAGES:  # one neuron carries one attribute within a language
        neurons = np.concatenate([planted[a][lang] for a in ATTRIBUTES])
        assert len(set(neurons.tolist())) == len(neurons)
    firsts = [set(planted[a][LANGUAGES[0]][:shared].tolist()) for a in ATTRIBUTES]
    assert all(not (x & y) for x, y in itertools.combinations(firsts, 2))


def test_languages_own_neurons_coincide_at_chance_only():
    """At ρ = 0 two languages' planted sets are independent draws: their mean intersection is m²/(D - 0)."""
    setting = Setting(width=128, shared_share=0.0, k=10)
    rng = np.random.default_rng(1)
    shared = []
    for _ in range(400):
        planted = plant(setting, rng)["Number"]
        shared.append(len(set(planted["la"].tolist()) & set(planted["lb"].tolist())))
    # Each language draws its 24 neurons (3 attributes x 8) from 128; Number's 8 of la meet lb's 8 of
    # Number with probability 8/128 each: 0.5 on average, SE 0.035 over 400 draws.
    assert np.mean(shared) == pytest.approx(8 * 8 / 128, abs=0.12)


def test_expected_overlap_is_chance_at_rho_zero_and_the_shared_share_at_one():
    assert Setting(width=128, shared_share=0.0, k=10).expected_overlap(10) == pytest.approx(10 / 128)
    assert Setting(width=1024, shared_share=1.0, k=8).expected_overlap(8) == pytest.approx(1.0)
    # 2 shared of 10 picks, the other 8 meet by chance among 126 neurons.
    assert Setting(width=128, shared_share=0.25, k=10).expected_overlap(10) == pytest.approx(
        (2 + 64 / 126) / 10
    )


def test_holm_keeps_the_familywise_error_of_random_selections(tmp_path):
    """The overlap stage's statistics under their exact null (independent random top-k lists):
    a family of 6 language pairs rejects at most α = 0.05 of the time, per pair and family-wise."""
    rng = np.random.default_rng(2)
    width, k, families = 128, 10, 2000
    paths = []
    for lang in LANGUAGES:
        picks = {f"family{f}": {"selected": rng.permutation(width)[:k].tolist()} for f in range(families)}
        paths.append(tmp_path / f"{lang}.json")
        write_json(paths[-1], {"treebank": lang, "language": lang, "dimension": width, "attributes": picks})
    table = compute_overlap(paths, tmp_path / "overlap.tsv", k=k, random_draws=1)
    at_k = table[table["k"] == k]
    significant = at_k["p_holm"] < 0.05
    familywise = significant.groupby(at_k["attribute"]).any().mean()
    assert len(at_k) == 6 * families
    assert significant.mean() <= 0.05
    assert familywise <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / families)
    # The uncorrected p-values reject a pair about as often as their discreteness allows (≤ α).
    assert 0.005 < (at_k["p_value"] < 0.05).mean() <= 0.05


def test_correlation_interval_covers_a_known_correlation_with_many_checkpoints():
    result = correlation_coverage(points=25, true_r=0.6, repeats=60, resamples=300)
    assert result["undefined"] == 0
    assert 0.8 <= result["pearson_coverage"] <= 1.0
    assert 0.2 < result["pearson_width"] < 1.0


@pytest.mark.slow  # the benchmark end to end: probes for every setting
def test_quick_benchmark_recovers_planted_sharing(tmp_path):
    """The benchmark's --quick run (D = 128, k = 10, 3 seeds, ρ in {0, 0.5, 1}) through the workflow's stages."""
    spec = importlib.util.spec_from_file_location("validity_benchmark", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    docs = tmp_path / "docs"
    status = benchmark.main(["--quick", "--out", str(tmp_path), "--rows", "1000", "--docs", str(docs)])
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t").sort_values("shared_share")
    raw = pd.read_csv(tmp_path / "overlap_rows.tsv", sep="\t")
    assert status == 0
    assert list(summary["shared_share"]) == [0.0, 0.5, 1.0]
    assert (summary["seeds"] == 3).all() and (summary["width"] == 128).all() and (summary["k"] == 10).all()
    # The summary is the mean of the raw overlap file's rows at k = 10.
    at_k = raw[raw["k"] == 10]
    np.testing.assert_allclose(summary["overlap"], at_k.groupby("shared_share")["overlap"].mean())
    null, half, full = summary.itertuples()
    assert null.overlap == pytest.approx(10 / 128, abs=0.04)
    assert null.significant <= 0.05 and null.familywise <= 0.05
    assert null.overlap < half.overlap < full.overlap
    # 0.85, not 0.9: with the faster probe's own random stream 16 of 18 pairs (0.89) are significant here.
    assert full.overlap > 5 * full.chance and full.significant >= 0.85
    assert summary["recall"].min() > 0.7  # the probes find most planted neurons
    picks = pd.read_csv(tmp_path / "noise_picks.tsv", sep="\t")
    assert list(picks["shared_share"]) == [0.0, 0.5, 1.0] and picks["mean_quantile"].between(0, 1).all()
    # The report in docs/ is rendered from those files.
    report = (docs / "validity.md").read_text()
    assert f"| 128 | 10 | 0.00 | {null.overlap:.3f} ({null.overlap_sd:.3f}) |" in report
    assert "1000 words each" in report and "Checks: all passed" in report
    assert (docs / "validity.png").stat().st_size > 10_000
    coverage = pd.read_csv(tmp_path / "coverage.tsv", sep="\t")
    assert list(coverage["points"]) == [6, 25]
    assert coverage["pearson_coverage"].between(0, 1).all()
