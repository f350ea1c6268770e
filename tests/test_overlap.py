import math

import numpy as np
import pandas as pd
import pytest

from xlprobe import overlap
from xlprobe.io import read_json, read_tsv, write_json
from xlprobe.overlap import (
    COLUMNS,
    compute_overlap,
    holm,
    hypergeom_pvalue,
    overlap_table,
    random_overlap_curve,
)


def tail_by_counting(shared, width, k):
    """P(X >= shared) for X = |A ∩ B|, A, B random k-subsets of width, by counting subsets."""
    total = math.comb(width, k)
    return sum(math.comb(k, x) * math.comb(width - k, k - x) for x in range(shared, k + 1)) / total


@pytest.mark.parametrize(
    "shared,width,k", [(0, 20, 5), (1, 20, 5), (3, 20, 5), (5, 20, 5), (4, 1024, 50), (10, 2048, 50)]
)
def test_hypergeom_pvalue_matches_counting(shared, width, k):
    assert hypergeom_pvalue(shared, width, k) == pytest.approx(
        tail_by_counting(shared, width, k), rel=1e-9, abs=1e-300
    )


def test_holm_hand_computed():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == pytest.approx([0.2])
    assert holm([]).size == 0


def test_overlap_table_on_hand_built_sets():
    selections = {
        "a": {"Number": [1, 2, 3, 4], "Case": [5, 6, 7, 8]},
        "b": {"Number": [2, 1, 9, 8]},
        "c": {"Number": [4, 0, 1, 2]},
        "d": {},  # a treebank without any kept attribute
    }
    languages = {"a": "la", "b": "lb", "c": "lc", "d": "ld"}
    frame = overlap_table(selections, width=10, k=4, languages=languages, seed=0, random_draws=50)
    assert list(frame.columns) == COLUMNS
    assert set(frame["attribute"]) == {"Number"}  # Case is kept in one treebank only: no pair
    ab = frame[(frame.treebank_a == "a") & (frame.treebank_b == "b")].set_index("k")
    assert set(ab["language_a"]) == {"la"} and set(ab["language_b"]) == {"lb"}
    assert ab["shared"].tolist() == [0, 2, 2, 2]
    assert ab["overlap"].tolist() == pytest.approx([0, 1, 2 / 3, 0.5])
    assert ab["chance"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    ac = frame[(frame.treebank_a == "a") & (frame.treebank_b == "c")].set_index("k")
    assert ac["shared"].tolist() == [0, 0, 1, 3]
    for kk, group in frame.groupby("k"):
        assert group["p_value"].tolist() == pytest.approx(
            [tail_by_counting(s, 10, kk) for s in group["shared"]]
        )
        assert group["p_holm"].tolist() == pytest.approx(holm(group["p_value"].to_numpy()).tolist())
    assert set(zip(frame.treebank_a, frame.treebank_b)) == {("a", "b"), ("a", "c"), ("b", "c")}


def test_holm_families_keep_within_language_pairs_apart():
    # b2 is a second treebank of b's language: its pairs with a are cross-lingual, its pair with b is
    # not, and adding it changes no cross-lingual corrected p-value other than by the pairs it adds.
    selections = {"a": {"N": [0, 1]}, "b": {"N": [0, 2]}, "b2": {"N": [0, 1]}}
    languages = {"a": "la", "b": "lb", "b2": "lb"}
    frame = overlap_table(selections, width=10, k=2, languages=languages, random_draws=5)
    at_2 = frame[frame["k"] == 2].set_index(["treebank_a", "treebank_b"])
    cross = at_2.loc[[("a", "b"), ("a", "b2")]]
    assert cross["p_holm"].tolist() == pytest.approx(holm(cross["p_value"].to_numpy()).tolist())
    assert at_2.loc[("b", "b2"), "p_holm"] == pytest.approx(at_2.loc[("b", "b2"), "p_value"])


def test_random_baseline_is_seeded_and_near_chance():
    curve = random_overlap_curve(width=100, k=20, draws=3000, seed=1)
    assert np.array_equal(curve, random_overlap_curve(width=100, k=20, draws=3000, seed=1))
    assert not np.array_equal(curve, random_overlap_curve(width=100, k=20, draws=3000, seed=2))
    # Overlap at k' has mean k'/D and standard deviation sqrt(var(hypergeom))/k'.
    chance = np.arange(1, 21) / 100
    assert np.abs(curve - chance).max() < 0.01


def test_random_baseline_counts_like_sets():
    # Same draws as the function, counted with Python sets.
    width, k, draws, seed = 12, 5, 7, 3
    rng = np.random.default_rng(seed)
    a = np.argsort(rng.random((draws, width)), axis=1)[:, :k]
    b = np.argsort(rng.random((draws, width)), axis=1)[:, :k]
    expected = [
        np.mean([len(set(a[d, :kk]) & set(b[d, :kk])) / kk for d in range(draws)]) for kk in range(1, k + 1)
    ]
    assert random_overlap_curve(width, k, draws, seed) == pytest.approx(expected)


def _probe(path, dimension, attributes, checkpoint=None):
    """A probe result of treebank `path.stem`, each treebank a language of its own."""
    write_json(
        path,
        {
            "treebank": path.stem,
            "language": path.stem,
            "dimension": dimension,
            "attributes": {
                name: {"classes": ["x", "y"], "selected": neurons} for name, neurons in attributes.items()
            },
            **({"provenance": {"checkpoint": checkpoint}} if checkpoint else {}),
        },
    )
    return path


CHECKPOINT = {"model": "m", "step": "7", "source": "hub", "repo": "org/m", "revision": "s7", "commit": "e" * 40}


def test_compute_overlap_writes_provenance_sidecar_before_the_table(tmp_path, monkeypatch):
    probes = [_probe(tmp_path / f"{tb}.json", 8, {"Case": [1, 2]}, CHECKPOINT) for tb in ("xa", "xb")]
    out = tmp_path / "overlap" / "m" / "7" / "layer2.tsv"
    sidecar = tmp_path / "overlap" / "m" / "7" / "layer2.provenance.json"
    real_write_tsv = overlap.write_tsv
    seen = []

    def write_tsv(path, frame):
        seen.append(sidecar.exists())
        real_write_tsv(path, frame)

    monkeypatch.setattr(overlap, "write_tsv", write_tsv)
    compute_overlap(probes, out, k=2, seed=3, random_draws=5)
    assert seen == [True]  # a TSV that looks finished has its provenance
    record = read_json(sidecar)
    assert record["inputs"] == [str(p) for p in probes]
    assert record["checkpoints"] == [CHECKPOINT]
    assert record["config"] == {"k": 2, "seed": 3, "random_draws": 5}
    assert record["libraries"]["scipy"]


def test_probes_of_two_checkpoint_commits_are_an_error(tmp_path):
    probes = [_probe(tmp_path / f"{tb}.json", 8, {"Case": [1, 2]}, CHECKPOINT) for tb in ("xa", "xb")]
    other = {**CHECKPOINT, "commit": "f" * 40}
    probes.append(_probe(tmp_path / "xc.json", 8, {"Case": [1, 3]}, other))
    out = tmp_path / "layer2.tsv"
    with pytest.raises(ValueError, match="different checkpoints") as error:
        compute_overlap(probes, out, k=2, random_draws=5)
    # The message names each file with its commit.
    message = str(error.value)
    assert f"{probes[0]}: commit {'e' * 40}" in message and f"{probes[2]}: commit {'f' * 40}" in message
    assert not out.exists() and not (tmp_path / "layer2.provenance.json").exists()


def test_compute_overlap_writes_file(tmp_path):
    probes = [
        _probe(tmp_path / "xa.json", 16, {"Number": [0, 1, 2]}),
        _probe(tmp_path / "xb.json", 16, {"Number": [1, 0, 5]}),
        _probe(tmp_path / "xc.json", 16, {}),
    ]
    out = tmp_path / "overlap" / "layer4.tsv"
    compute_overlap(probes, out, k=3, seed=0, random_draws=20)
    frame = read_tsv(out)
    assert frame[["treebank_a", "treebank_b"]].drop_duplicates().values.tolist() == [["xa", "xb"]]
    assert frame["shared"].tolist() == [0, 2, 2]
    assert frame["random_overlap"].notna().all()


def test_compute_overlap_without_pairs_writes_header(tmp_path):
    probes = [_probe(tmp_path / "xa.json", 8, {}), _probe(tmp_path / "xb.json", 8, {"Case": [1]})]
    out = tmp_path / "layer1.tsv"
    compute_overlap(probes, out, k=1)
    assert out.read_text().strip().split("\t") == ["replicate", *COLUMNS]


def test_compute_overlap_rejects_bad_probes(tmp_path):
    good = _probe(tmp_path / "xa.json", 8, {"Case": [1]})
    wider = _probe(tmp_path / "xb.json", 16, {"Case": [1]})
    with pytest.raises(ValueError, match="xb.json: dimension 16 differs from 8"):
        compute_overlap([good, wider], tmp_path / "o.tsv", k=1)
    outside = _probe(tmp_path / "xc.json", 8, {"Case": [9]})
    with pytest.raises(ValueError, match="xc.json: attribute 'Case'"):
        compute_overlap([good, outside], tmp_path / "o.tsv", k=1)
    write_json(tmp_path / "xd.json", {"attributes": {}, "treebank": "xd", "language": "xd"})
    with pytest.raises(ValueError, match=r"xd.json: probe result lacks \['dimension'\]"):
        compute_overlap([good, tmp_path / "xd.json"], tmp_path / "o.tsv", k=1)
    assert not (tmp_path / "o.tsv").exists()


def test_identity_comes_from_the_probe_file_not_its_name(tmp_path):
    # A file named xa.json holding treebank xb's probe is read as xb's.
    probes = [_labelled(tmp_path / "xa.json", "xb", "lb", {"N": [1]}), _probe(tmp_path / "xc.json", 8, {"N": [1]})]
    frame = compute_overlap(probes, tmp_path / "layer1.tsv", k=1, random_draws=5)
    assert frame[["treebank_a", "language_a", "treebank_b"]].values.tolist() == [["xb", "lb", "xc"]]
    write_json(tmp_path / "xd.json", {"dimension": 8, "attributes": {}})
    with pytest.raises(ValueError, match=r"xd.json: probe result lacks \['treebank', 'language'\]"):
        compute_overlap([probes[0], tmp_path / "xd.json"], tmp_path / "o.tsv", k=1)
    with pytest.raises(ValueError, match="treebank 'xb' already read"):
        compute_overlap([probes[0], probes[0]], tmp_path / "o.tsv", k=1)


def test_short_selection_uses_available_depth():
    frame = overlap_table(
        {"a": {"N": [0, 1, 2]}, "b": {"N": [0]}}, width=5, k=3, languages={"a": "a", "b": "b"}, random_draws=5
    )
    assert frame["k"].tolist() == [1]
    assert isinstance(frame, pd.DataFrame)


def _labelled(path, treebank, language, attributes, checkpoint=None, dimension=8):
    """A probe result as the probe rule writes it: its treebank and language inside."""
    _probe(path, dimension, attributes, checkpoint)
    write_json(path, {**read_json(path), "treebank": treebank, "language": language})
    return path


def test_same_language_pairs_are_reported_apart(tmp_path):
    from xlprobe.alignment import build_alignment

    # zh and zh_cfl are two treebanks of one language: their pair is a within-language reference.
    probes = [
        _labelled(tmp_path / "zh.json", "zh", "zh", {"Number": [0, 1]}),
        _labelled(tmp_path / "zh_cfl.json", "zh_cfl", "zh", {"Number": [0, 1]}),
        _labelled(tmp_path / "en.json", "en", "en", {"Number": [0, 5]}),
    ]
    out = tmp_path / "overlap" / "m" / "7" / "layer2.tsv"
    compute_overlap(probes, out, k=2, random_draws=5, point={"model": "m", "step": "7", "layer": 2})
    alignment, _ = build_alignment([out])
    row = alignment.iloc[0]
    # Cross-lingual: zh-en and zh_cfl-en share 1 of 2 each; the zh-zh_cfl pair (2 of 2) is apart.
    assert row["overlap"] == pytest.approx(0.5), "a same-language pair entered the cross-lingual mean"
    assert row["n_pairs"] == 2
    assert row["within_language_overlap"] == pytest.approx(1.0)
    assert row["n_within_pairs"] == 1


def test_the_overlap_names_its_point_and_refuses_probes_of_another(tmp_path):
    probes = []
    for tb in ("xa", "xb"):
        _probe(tmp_path / f"{tb}.json", 8, {"N": [1]})
        write_json(tmp_path / f"{tb}.json", {**read_json(tmp_path / f"{tb}.json"), "model": "m", "step": "7", "layer": 2})
        probes.append(tmp_path / f"{tb}.json")
    out = tmp_path / "layer2.tsv"
    compute_overlap(probes, out, k=1, random_draws=5)  # the probes' own point
    assert read_json(tmp_path / "layer2.provenance.json")["point"] == {"model": "m", "seed": None, "step": 7, "layer": 2}
    with pytest.raises(ValueError, match=r"xa\.json: a probe of .*'layer': '2'.*not of .*'layer': 3"):
        compute_overlap(probes, out, k=1, point={"model": "m", "step": "7", "layer": 3})
