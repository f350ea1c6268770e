"""Probe replicates, stability of the picks, the overlap's interval and pre-training seeds."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from probe_fixture import EXPECTED, probe_result
from scipy import stats
from workflow_runs import planned_jobs, snakemake

from xlprobe import costs
from xlprobe.alignment import significant_pairs, summarize_overlap
from xlprobe.correlation import correlation_table
from xlprobe.identity import model_point, model_runs, run_spec
from xlprobe.io import read_tsv, write_json
from xlprobe.overlap import compute_overlap
from xlprobe.plan import plan
from xlprobe.probing import resampled_rows
from xlprobe.uncertainty import pigeonhole_interval

REPO = Path(__file__).resolve().parents[1]


def test_one_replicate_reproduces_the_stored_probe_result(tmp_path):
    """probe.replicates = 1 (the default) gives the numbers stored from the code before replicates."""
    expected = json.loads(EXPECTED.read_text())
    result = probe_result(tmp_path)
    assert result["attributes"] == expected["attributes"]


def test_resampled_rows_keep_every_class_count_and_draw_with_replacement():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    rows = resampled_rows(labels, seed=5)
    assert np.bincount(labels[rows]).tolist() == [50, 30, 3]
    assert (np.diff(rows) >= 0).all() and len(np.unique(rows)) < len(labels)  # repeats: with replacement
    assert rows.tolist() == resampled_rows(labels, seed=5).tolist()
    assert rows.tolist() != resampled_rows(labels, seed=6).tolist()


def test_replicates_after_the_first_read_a_bootstrap_of_train_and_dev(tmp_path, monkeypatch):
    """Replicate 0 probes the words as they are; replicates 1.. a stratified bootstrap of the train and
    dev words, a different one each; the test words, which only score, stay as they are."""
    from xlprobe import probing

    seen = []
    real = probing.probe_attribute

    def recording(splits, classes, **kwargs):
        seen.append(splits)
        return real(splits, classes, **kwargs)

    monkeypatch.setattr(probing, "probe_attribute", recording)
    probe_result(tmp_path, replicates=1)
    original = seen[0]
    seen.clear()
    result = probe_result(tmp_path / "r3", replicates=3)
    per_attribute = len(result["attributes"])
    first, second, third = seen[0], seen[1], seen[2]  # one attribute's three replicates
    for split in ("train", "dev", "test"):
        assert np.array_equal(first[split][0], original[split][0])
    for replicate in (second, third):
        assert np.array_equal(replicate["test"][0], original["test"][0])
        for split in ("train", "dev"):
            X, y = replicate[split]
            X0, y0 = original[split]
            assert np.bincount(y).tolist() == np.bincount(y0).tolist()
            # Every row is one of the original rows, some twice, some left out.
            keys = {row.tobytes() for row in X0}
            assert all(row.tobytes() in keys for row in X)
            assert len({row.tobytes() for row in X}) < len(X0)
    assert not np.array_equal(second["train"][0], third["train"][0])
    assert len(seen) == 3 * per_attribute
    assert "words" not in result["attributes"][next(iter(result["attributes"]))]
    assert {r["words"] for rep in result["replicate_attributes"] for r in rep.values()} == {
        "bootstrap of train and dev"}


def test_pooled_seed_correlation_resamples_runs_then_checkpoints():
    """Two seeds of one model: a row per seed (its checkpoints only) and a pooled row whose r is the
    pooled points' Pearson r, with an interval from resampling runs, then checkpoints."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    alignment = pd.DataFrame({"model": "m", "seed": [0] * 6 + [1] * 6, "step": list(range(6)) * 2, "layer": 1,
                              "overlap": x, "transfer_t": x + rng.normal(scale=0.5, size=12)})
    table = correlation_table(alignment, resamples=200, measures=["overlap"])
    included = table[(table["finals"] == "included") & (table["model"] == "m")].set_index("seed")
    assert list(included.index) == [0, 1, "pooled"]
    for seed in (0, 1):
        rows = alignment[alignment["seed"] == seed]
        assert included.at[seed, "pearson_r"] == pytest.approx(stats.pearsonr(rows["overlap"], rows["transfer_t"])[0])
    pooled = included.loc["pooled"]
    assert pooled["n"] == 12
    assert pooled["pearson_r"] == pytest.approx(stats.pearsonr(alignment["overlap"], alignment["transfer_t"])[0])
    assert pooled["pearson_ci_low"] < pooled["pearson_r"] < pooled["pearson_ci_high"]
    # Without seeds the table has one row per model, as before, with an empty seed.
    plain = correlation_table(alignment.drop(columns="seed").iloc[:6], resamples=50, measures=["overlap"])
    assert plain["seed"].isna().all() and set(plain["model"]) == {"m", "pooled"}


def _probe_file(path, treebank, replicates, width=10):
    """A probe result whose replicates picked `replicates[r][attribute]`."""
    records = [{a: {"selected": picks} for a, picks in r.items()} for r in replicates]
    result = {"model": "m", "seed": 3, "step": 7, "layer": 2, "treebank": treebank, "language": treebank,
              "dimension": width, "k": 3, "replicates": len(records), "attributes": records[0]}
    if len(records) > 1:
        result["replicate_attributes"] = records[1:]
    write_json(path, result)
    return path


def test_overlap_is_computed_within_each_replicate_and_stability_across_them(tmp_path):
    a = _probe_file(tmp_path / "a.json", "xa", [{"Case": [1, 2, 3]}, {"Case": [1, 2, 4]}, {"Case": [5, 6, 7]}])
    b = _probe_file(tmp_path / "b.json", "xb", [{"Case": [3, 2, 9]}, {"Case": [8, 9, 0]}, {"Case": [5, 6, 7]}])
    frame = compute_overlap([a, b], tmp_path / "o.tsv", k=3, stability_output=tmp_path / "s.tsv")
    at_k = frame[frame["k"] == 3].set_index("replicate")
    assert at_k["overlap"].tolist() == pytest.approx([2 / 3, 0, 1])
    assert at_k["p_value"].tolist() == pytest.approx(
        [stats.hypergeom.sf(s - 1, 10, 3, 3) for s in (2, 0, 3)])
    written = read_tsv(tmp_path / "o.tsv")
    assert written[["model", "seed", "step", "layer"]].drop_duplicates().values.tolist() == [["m", 3, 7, 2]]
    stability = read_tsv(tmp_path / "s.tsv").set_index("treebank")
    # xa: replicates share 2, 0, 0 of 3 picks; xb: 0 (3/2/9 vs 8/9/0 share 9: 1), 0, 0.
    assert stability.at["xa", "stability"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert stability.at["xb", "stability"] == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert stability["stability_chance"].tolist() == [0.3, 0.3]


def test_one_replicate_has_no_stability_and_no_interval(tmp_path):
    a = _probe_file(tmp_path / "a.json", "xa", [{"Case": [1, 2, 3]}])
    b = _probe_file(tmp_path / "b.json", "xb", [{"Case": [3, 2, 9]}])
    c = _probe_file(tmp_path / "c.json", "xc", [{"Case": [3, 4, 5]}])
    frame = compute_overlap([a, b, c], tmp_path / "o.tsv", k=3, stability_output=tmp_path / "s.tsv")
    assert read_tsv(tmp_path / "s.tsv")["stability"].isna().all()
    summary = summarize_overlap(frame)
    assert summary[["overlap_ci_low", "overlap_ci_high"]].isna().all().all()
    assert np.isnan(summary.attrs["overlap_ci"]).all()
    # The share of significant pairs is read from the file's own Holm column, as without replicates.
    assert summary.at[0, "share_significant"] == pytest.approx((frame.loc[frame["k"] == 3, "p_holm"] < 0.05).mean())


def test_pairs_combine_their_replicates_p_values_before_holm():
    """p of a pair = min(1, 2 x median over replicates); then Holm over the pairs of an attribute."""
    rows = []
    p = {("xa", "xb"): [0.001, 0.002, 0.5], ("xa", "xc"): [0.01, 0.04, 0.03], ("xb", "xc"): [0.2, 0.9, 0.6]}
    for (a, b), values in p.items():
        for replicate, value in enumerate(values):
            rows.append({"replicate": replicate, "attribute": "Case", "treebank_a": a, "treebank_b": b,
                         "language_a": a, "language_b": b, "k": 3, "shared": 1, "overlap": 1 / 3,
                         "chance": 0.3, "p_value": value, "p_holm": value, "random_overlap": 0.3})
    pairs = significant_pairs(pd.DataFrame(rows), alpha=0.05).set_index(["treebank_a", "treebank_b"])
    combined = {pair: min(1.0, 2 * float(np.median(v))) for pair, v in p.items()}
    assert pairs["p_combined"].to_dict() == pytest.approx(combined)
    # Holm by hand: sorted 0.004, 0.06, 1.0 -> 3 x 0.004, max(2 x 0.06, ...), 1.
    assert pairs.loc[("xa", "xb"), "p_holm"] == pytest.approx(0.012)
    assert pairs.loc[("xa", "xc"), "p_holm"] == pytest.approx(0.12)
    assert pairs["significant"].tolist() == [True, False, False]


def test_pigeonhole_interval_weighs_cells_by_replicate_and_pair_counts():
    """The vectorised resampling against a loop over the same draws, cell by cell: each resample
    draws R - 1 of the R replicates and P - 1 of the P pairs."""
    rng = np.random.default_rng(1)
    cells = rng.random((2, 3, 4))
    cells[1, :, 3] = np.nan  # an attribute without one pair
    low, high, point_low, point_high = pigeonhole_interval(cells, resamples=300, seed=5)
    draws = np.random.default_rng(5)
    w_r = draws.multinomial(2, np.full(3, 1 / 3), size=300)
    w_p = draws.multinomial(3, np.full(4, 1 / 4), size=300)
    by_hand = np.empty((300, 2))
    for b in range(300):
        for a in range(2):
            values, weights = [], []
            for r in range(3):
                for p in range(4):
                    if not np.isnan(cells[a, r, p]):
                        values.append(cells[a, r, p])
                        weights.append(w_r[b, r] * w_p[b, p])
            by_hand[b, a] = np.average(values, weights=weights) if sum(weights) else np.nan
    assert low == pytest.approx(np.nanpercentile(by_hand, 2.5, axis=0))
    assert high == pytest.approx(np.nanpercentile(by_hand, 97.5, axis=0))
    assert point_low == pytest.approx(np.nanpercentile(np.nanmean(by_hand, axis=1), 2.5))
    assert point_low < np.nanmean(np.nanmean(cells, axis=(1, 2))) < point_high
    assert np.isnan(pigeonhole_interval(cells[:, :1], resamples=10)[2])


def test_pigeonhole_variance_of_a_mean_is_the_unbiased_one():
    """One attribute, one pair, R replicates: each resample's mean is that of R - 1 draws, whose
    variance is s^2 / R with s^2 the unbiased sample variance (R draws would give (R - 1)/R of it)."""
    values = np.array([0.0, 0.0, 0.0, 1.0])
    means = np.array([np.mean(c) for c in itertools.product(values, repeat=3)])
    assert np.var(means) == pytest.approx(values.var(ddof=1) / 4)
    # P(mean = 1) = 1/64 < 2.5% <= P(mean >= 2/3): the exact 97.5th percentile is 2/3 (with 4 draws
    # per resample it would be 3/4).
    low, high, _, _ = pigeonhole_interval(values.reshape(1, 4, 1), resamples=20000, seed=0)
    assert (low[0], high[0]) == pytest.approx((0.0, 2 / 3))


@pytest.mark.slow
def test_two_seeds_and_three_replicates_give_intervals_and_stability(tmp_path):
    """config/test.yaml with one demo model, seeds [0, 1] and probe.replicates 3: alignment.tsv has a
    row per seed and step with the overlap inside a proper interval, and the stability of the picks."""
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["models"] = {"demo-32": {**config["models"]["demo-32"], "seeds": [0, 1]}}
    config["probe"]["replicates"] = 3
    del config["similarity"]  # not what this run is for (CI time)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, result.stderr[-5000:]
    check_replicated_run(tmp_path / config["results"], config)


def check_replicated_run(results: Path, config: dict) -> None:
    """What the done-when run of issue 22 must show in its results folder."""
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t")
    steps = config["models"]["demo-32"]["steps"]
    assert sorted(zip(alignment["seed"], alignment["step"])) == sorted((s, t) for s in (0, 1) for t in steps)
    assert (alignment["model"] == "demo-32").all() and (alignment["replicates"] == 3).all()
    assert (alignment["overlap_ci_low"] <= alignment["overlap"]).all()
    assert (alignment["overlap"] <= alignment["overlap_ci_high"]).all()
    assert (alignment["overlap_ci_low"] < alignment["overlap_ci_high"]).all()
    assert alignment["stability"].between(0, 1).all()
    assert (alignment["stability_chance"] == alignment["k"] / alignment["width"]).all()
    # The two seeds are two pre-training runs: different weights, so different activations.
    dumps = [np.load(results / f"activations/demo-32-seed{s}/400/xa/layer2.npy") for s in (0, 1)]
    assert not np.array_equal(*dumps)
    probe = json.loads((results / "probes/demo-32-seed1/400/layer2/xa.json").read_text())
    assert (probe["model"], probe["seed"], probe["step"], probe["replicates"]) == ("demo-32", 1, 400, 3)
    assert len(probe["replicate_attributes"]) == 2
    correlations = pd.read_csv(results / "correlations.tsv", sep="\t", dtype={"seed": str})
    assert {"0", "1", "pooled"} <= set(correlations.loc[correlations["model"] == "demo-32", "seed"])
    for name in ("overlap_over_chance_vs_step", "stability_vs_step"):
        assert (results / f"figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeded_models_run_once_per_seed_with_the_seed_filled_in():
    models = {
        "pythia-160m": {"source": "hub", "repo": "EleutherAI/pythia-160m-seed{seed}", "revision": "step{step}",
                        "steps": [0, 1000], "seeds": [1, 2]},
        "demo-32": {"source": "demo", "steps": [0], "seeds": [0]},
        "plain": {"source": "hub", "repo": "org/plain", "revision": "step{step}", "steps": [0]},
    }
    runs = model_runs(models)
    assert runs == {"pythia-160m-seed1": {"model": "pythia-160m", "seed": 1},
                    "pythia-160m-seed2": {"model": "pythia-160m", "seed": 2},
                    "demo-32-seed0": {"model": "demo-32", "seed": 0},
                    "plain": {"model": "plain", "seed": None}}
    spec = run_spec(models, runs["pythia-160m-seed2"])
    assert (spec["repo"], spec["revision"], spec["seed"], spec["model"]) == (
        "EleutherAI/pythia-160m-seed2", "step{step}", 2, "pythia-160m")
    assert "seeds" not in spec
    assert run_spec(models, runs["plain"]) == models["plain"]
    assert model_point({"name": "pythia-160m-seed2", **spec}, "1000") == {"model": "pythia-160m", "seed": 2,
                                                                          "step": 1000}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": "hub", "repo": "org/m", "revision": "step{step}", "seeds": [1]}, r"models\.m\.seeds: needs a \{seed\}"),
        ({"source": "hub", "repo": "org/m-seed{seed}", "revision": "main"}, r"models\.m\.repo: has a \{seed\}"),
    ],
)
def test_a_seed_without_its_field_or_a_field_without_seeds_is_an_error(spec, message):
    with pytest.raises(ValueError, match=message):
        model_runs({"m": {**spec, "steps": [0]}})


def test_probe_cost_counts_the_replicates():
    from xlprobe.workflow_config import schema_defaults

    sizes = [costs.AttributeSize(1000, 100, 100, 4)]
    probe = {**schema_defaults("probe"), "k": 10}
    one = costs.probe_seconds(sizes, 64, probe, costs.unit_costs())
    assert costs.probe_seconds(sizes, 64, {**probe, "replicates": 3}, costs.unit_costs()) == pytest.approx(3 * one)


def test_plan_counts_a_seeded_models_jobs_as_the_dry_run_does(tmp_path):
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["models"]["demo-32"]["seeds"] = [0, 1]
    config["probe"]["replicates"] = 2
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=configfile, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    dry = planned_jobs(result)
    assert dry["probe"] == 3 * 3 * 2  # runs (two seeds of demo-32, demo-48) x treebanks x steps
    counted = {}
    for row in plan(config, workdir=tmp_path):
        for rule in row["rule"].split(", "):
            counted[rule] = row["jobs"] // len(row["rule"].split(", "))
    rules = ("pretrain_demo_model", "dump_activations", "probe", "compute_overlap", "transfer")
    assert {rule: counted[rule] for rule in rules} == {rule: dry[rule] for rule in rules}
