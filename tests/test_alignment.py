
import numpy as np
import pandas as pd
import pytest
from results_layout import identified, record_point

from xlprobe.alignment import (
    build_alignment,
    identified_table,
    point_of,
    read_table,
    sort_points,
    write_alignment_table,
)
from xlprobe.io import read_json, write_json, write_tsv
from xlprobe.overlap import COLUMNS
from xlprobe.provenance import sidecar_path


def overlap_file(path, width, rows, point=None):
    """rows: (attribute, a, b, k, shared, p_holm), each treebank a language of its own; the rest derived."""
    frame = pd.DataFrame(rows, columns=["attribute", "treebank_a", "treebank_b", "k", "shared", "p_holm"])
    frame["language_a"], frame["language_b"] = frame["treebank_a"], frame["treebank_b"]
    frame["overlap"] = frame["shared"] / frame["k"]
    frame["chance"] = frame["k"] / width
    frame["p_value"] = frame["p_holm"]
    frame["random_overlap"] = frame["chance"]
    write_tsv(path, frame.reindex(columns=COLUMNS))
    record_point(path, "overlap", point)
    return path


def transfer_file(path, rows, point=None):
    write_tsv(path, identified(pd.DataFrame(rows, columns=["language", "role", "metric", "value"]), path, "transfer", point))
    return path


def similarity_file(path, rows, point=None):
    frame = pd.DataFrame(rows, columns=["source", "target", "layer", "pooling", "cosine", "pairs"])
    write_tsv(path, identified(frame, path, "similarity", point))
    return path


@pytest.fixture
def results(tmp_path):
    R = tmp_path
    # Step 100: Number has 2 pairs at k=2 (shared 1 and 2), Case one pair (shared 0). Rows at k=1 are ignored.
    o100 = overlap_file(
        R / "overlap/m/100/layer4.tsv",
        10,
        [
            ("Number", "xa", "xb", 1, 1, 0.5),
            ("Number", "xa", "xb", 2, 1, 0.3),
            ("Number", "xa", "xc", 1, 0, 1.0),
            ("Number", "xa", "xc", 2, 2, 0.01),
            ("Case", "xa", "xb", 1, 0, 1.0),
            ("Case", "xa", "xb", 2, 0, 1.0),
        ],
    )
    ofinal = overlap_file(
        R / "overlap/m/final/layer4.tsv",
        10,
        [
            ("Number", "xa", "xb", 2, 2, 0.01),
            ("Number", "xa", "xc", 2, 2, 0.02),
        ],
    )
    o20 = R / "overlap/m/20/layer4.tsv"
    write_tsv(o20, pd.DataFrame(columns=COLUMNS))  # no attribute kept in two treebanks
    record_point(o20, "overlap")
    transfer = [
        transfer_file(
            R / "transfer/m/100/pos.tsv",
            [
                ("xa", "source", "f1", 0.9),
                ("xa", "source", "accuracy", 0.95),
                ("xb", "target", "f1", 0.4),
                ("xc", "target", "f1", 0.6),
                ("xd", "target", "f1", 0.0),
                ("xb", "target", "accuracy", 0.99),
            ],
        ),
        transfer_file(
            R / "transfer/m/100/xnli.tsv",
            [("xb", "target", "accuracy", 0.5), ("xc", "target", "accuracy", 0.7)],
        ),
    ]
    similarity = [
        similarity_file(
            R / "similarity/m/100.tsv",
            [
                ("xa", "xb", 4, "last", 0.8, 10),
                ("xa", "xc", 4, "last", 0.6, 10),
                ("xa", "xb", 3, "last", 0.0, 10),
            ],
        ),
        similarity_file(
            R / "similarity/m/final.tsv",
            [
                ("xa", "xb", 2, "last", 0.2, 10),
                ("xa", "xb", 3, "last", 0.4, 10),
                ("xa", "xc", 3, "last", 0.6, 10),
            ],
        ),
    ]
    return [ofinal, o100, o20], transfer, similarity


def test_a_result_s_identity_is_its_own_not_its_path(tmp_path):
    # Files named for another point: what counts is what they say.
    overlap = overlap_file(tmp_path / "overlap/x/1/layer9.tsv", 10, [], point={"model": "demo-64", "step": "final", "layer": 17})
    assert point_of(overlap) == {"model": "demo-64", "step": "final", "layer": 17}  # no rows: the sidecar
    transfer = transfer_file(tmp_path / "transfer/x/1/y.tsv", [("xb", "target", "f1", 0.5)],
                             point={"model": "m", "seed": 3, "step": 1000, "task": "pos"})
    assert identified_table(transfer, {"metric"}, ("task",))[0] == ("m", 3, 1000, "pos")
    similarity = similarity_file(tmp_path / "similarity/x/1.tsv", [("xa", "xb", 4, "last", 0.8, 10)],
                                 point={"model": "m", "seed": None, "step": 0})
    assert identified_table(similarity, {"cosine"}, ())[0] == ("m", None, 0)
    assert identified_table(similarity_file(tmp_path / "similarity/m/2.tsv", []), {"cosine"}, ())[0] is None
    bare = tmp_path / "overlap/m/0/layer4.tsv"
    write_tsv(bare, pd.DataFrame(columns=COLUMNS))
    with pytest.raises(ValueError, match=r"layer4\.tsv: no provenance record .*layer4\.provenance\.json"):
        point_of(bare)
    write_json(sidecar_path(bare), {"inputs": []})
    with pytest.raises(ValueError, match=r"layer4\.provenance\.json names no point"):
        point_of(bare)
    headless = tmp_path / "transfer/m/0/pos.tsv"
    write_tsv(headless, pd.DataFrame([("xb", "target", "f1", 0.5)], columns=["language", "role", "metric", "value"]))
    with pytest.raises(ValueError, match=r"pos\.tsv: missing columns \['model', 'seed', 'step', 'task'\]"):
        identified_table(headless, {"metric"}, ("task",))


def test_alignment_aggregates_by_hand(results):
    overlap, transfer, similarity = results
    alignment, attributes = build_alignment(
        overlap, transfer, similarity, {"pos": ["xb", "xc"], "xnli": None}
    )
    assert alignment["step"].tolist() == [20, 100, "final"]  # numeric order, final last
    assert alignment["final"].tolist() == [False, False, True]
    row = alignment.set_index("step").loc[100]
    # Number: mean(1/2, 2/2) = .75; Case: 0; macro mean .375; chance 2/10.
    assert row["overlap"] == pytest.approx(0.375)
    assert row["chance"] == pytest.approx(0.2)
    assert row["overlap_minus_chance"] == pytest.approx(0.175)
    assert row["overlap_over_chance"] == pytest.approx(0.375 / 0.2)
    assert (row["n_pairs"], row["n_attributes"], row["width"], row["k"]) == (3, 2, 10, 2)
    assert row["share_significant"] == pytest.approx((0.5 + 0.0) / 2)
    assert row["transfer_pos"] == pytest.approx(0.5)  # f1 over the configured targets only
    assert row["transfer_pos_source"] == pytest.approx(0.9)
    assert row["transfer_pos_metric"] == "f1"
    assert row["transfer_xnli"] == pytest.approx(0.6)  # all targets when none configured
    assert row["similarity"] == pytest.approx(0.7)
    final = alignment.set_index("step").loc["final"]
    # One definition per column: layer 4 was not measured at this point, so no value at the probed
    # layer; the mean over every measured layer is a column of its own.
    assert np.isnan(final["similarity"]), "the all-layer mean entered the probed layer's column"
    assert final["similarity_all_layers"] == pytest.approx((0.2 + 0.5) / 2)
    assert row["similarity_all_layers"] == pytest.approx((0.7 + 0.0) / 2)
    assert np.isnan(final["transfer_pos"])  # no transfer file for this point
    empty = alignment.set_index("step").loc[20]
    assert empty["n_pairs"] == 0 and np.isnan(empty["overlap"])
    number = attributes[(attributes["step"] == 100) & (attributes["attribute"] == "Number")].iloc[0]
    assert (number["overlap"], number["n_pairs"]) == (pytest.approx(0.75), 2)


def test_alignment_files_round_trip(results, tmp_path):
    overlap, transfer, similarity = results
    write_alignment_table(
        overlap, transfer, similarity, tmp_path / "a.tsv", tmp_path / "b.tsv", {"pos": ["xb"]}
    )
    table = read_table(tmp_path / "a.tsv")
    assert table["step"].tolist() == [20, 100, "final"]
    attributes = read_table(tmp_path / "b.tsv")
    assert set(attributes["attribute"]) == {"Number", "Case"}
    for name in ("a", "b"):
        record = read_json(tmp_path / f"{name}.provenance.json")
        assert record["inputs"] == {"overlap": [str(p) for p in overlap], "transfer": [str(p) for p in transfer],
                                    "similarity": [str(p) for p in similarity], "lm_loss": [], "stability": [],
                                    "probe_transfer": []}
        assert record["config"] == {"alpha": 0.05, "targets": {"pos": ["xb"]}, "suspect_margin": 1.0, "seed": 0}


def test_missing_target_language_names_file(results):
    overlap, transfer, similarity = results
    with pytest.raises(ValueError, match=r"pos.tsv: no 'f1' for configured target languages \['xz'\]"):
        build_alignment(overlap, transfer, similarity, {"pos": ["xb", "xz"]})


def test_bad_columns_name_file(results, tmp_path):
    overlap, _, _ = results
    bad = transfer_file(tmp_path / "transfer/m/100/pos.tsv", [("xb", "target", "f1", 0.1)])
    pd.read_csv(bad, sep="\t").drop(columns="role").to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"pos.tsv: missing columns \['role'\]"):
        build_alignment(overlap, [bad])


def test_sort_points_orders_models_then_steps():
    frame = pd.DataFrame(
        {"model": ["b", "a", "b", "a"], "step": ["final", 5, 10, "final"], "layer": [1, 1, 1, 1]}
    )
    ordered = sort_points(frame, ["b", "a"])
    assert list(zip(ordered["model"], ordered["step"])) == [
        ("b", 10),
        ("b", "final"),
        ("a", 5),
        ("a", "final"),
    ]


def test_similarity_uses_the_papers_last_token_pooling_only():
    from xlprobe.alignment import similarity_scores

    frame = pd.DataFrame({
        "source": ["en"] * 4, "target": ["fr"] * 4, "layer": [4, 4, 5, 5],
        "pooling": ["mean", "last", "mean", "last"], "cosine": [0.1, 0.9, 0.2, 0.7], "pairs": [10] * 4,
    })
    assert similarity_scores(frame, 4) == {"similarity": 0.9, "similarity_all_layers": pytest.approx(0.8)}
    at_17 = similarity_scores(frame, 17)
    assert np.isnan(at_17["similarity"]) and at_17["similarity_all_layers"] == pytest.approx(0.8)


def test_each_seed_s_results_meet_at_their_own_row(tmp_path):
    """Two pre-training seeds of one model, the same step: every measure lands on its seed's row, read
    from the tables' identity columns (the files sit under one name to show the path plays no part)."""
    overlap, transfer, similarity, checks = [], [], [], []
    for seed, shared, f1, cosine, loss in ((1, 1, 0.4, 0.2, 5.0), (2, 2, 0.6, 0.8, 9.0)):
        point = {"model": "m", "seed": seed, "step": 100}
        rows = pd.DataFrame([("Number", "xa", "xb", 2, shared, 0.5)],
                            columns=["attribute", "treebank_a", "treebank_b", "k", "shared", "p_holm"])
        path = overlap_file(tmp_path / f"o{seed}/overlap/m/100/layer4.tsv", 10, rows.itertuples(index=False))
        frame = pd.read_csv(path, sep="\t")
        write_tsv(path, identified(frame, path, "overlap", {**point, "layer": 4}))
        overlap.append(path)
        transfer.append(transfer_file(tmp_path / f"t{seed}/transfer/m/100/pos.tsv", [("xb", "target", "f1", f1)],
                                      {**point, "task": "pos"}))
        similarity.append(similarity_file(tmp_path / f"s{seed}/similarity/m/100.tsv",
                                          [("xa", "xb", 4, "last", cosine, 10)], point))
        check = tmp_path / f"c{seed}/lm_loss/m/100.json"
        write_json(check, {**point, "lm_loss": loss, "weights": {"model.safetensors": {"sha256": str(seed)}}})
        checks.append(check)
    # seed 1's step 0: 6 nats; seed 2's step 100, at 9, would be suspect were the seeds one series
    early = tmp_path / "c1/lm_loss/m/0.json"
    write_json(early, {"model": "m", "seed": 1, "step": 0, "lm_loss": 6.0, "weights": {"model.safetensors": {"sha256": "0"}}})
    alignment, _ = build_alignment(overlap, transfer, similarity, check_paths=[early, *checks])
    rows = alignment.set_index("seed")
    assert rows.loc[1, "overlap"] == pytest.approx(0.5) and rows.loc[2, "overlap"] == pytest.approx(1.0)
    assert rows["transfer_pos"].to_dict() == {1: pytest.approx(0.4), 2: pytest.approx(0.6)}
    assert rows["similarity"].to_dict() == {1: pytest.approx(0.2), 2: pytest.approx(0.8)}
    assert rows["lm_loss"].to_dict() == {1: 5.0, 2: 9.0}
    # each seed is a series of its own
    assert not rows["suspect"].any()
